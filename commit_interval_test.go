package kafkaevents_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestCommitInterval: Consumer.CommitInterval sets how long handled records
// wait for their commit while the service runs. With 50ms the committed
// offset follows the handler; with 30s it stays where it was (sarama's
// default of 1s would have moved it) until the stop, which commits it.
func TestCommitInterval(t *testing.T) {
	env := newEnv(t)
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"short", 50 * time.Millisecond}, {"long", 30 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniq("commit-interval-" + tc.name)
			env.createTopics(t, 1, topic)
			cfg := env.baseConfig("commit-interval-" + tc.name)
			cfg.Consumer.CommitInterval = tc.interval
			var handled atomic.Int32
			rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.committed", func(*message.Message) error {
					handled.Add(1)
					return nil
				})
				require.NoError(t, err)
			})
			var msgs []kafkaevents.Message
			for i := range 20 {
				msgs = append(msgs, kafkaevents.Message{Topic: topic, Value: strconv.Itoa(i)})
			}
			_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return handled.Load() == 20 }, 30*time.Second, 5*time.Millisecond)
			if tc.interval < time.Second {
				require.Eventually(t, func() bool {
					return committedOffsetNow(admin, cfg.Consumer.GroupID, topic) == 20
				}, 5*time.Second, 10*time.Millisecond)
				return
			}
			time.Sleep(2500 * time.Millisecond) // more than twice sarama's default
			assert.Less(t, committedOffset(t, admin, cfg.Consumer.GroupID, topic), int64(20), "no commit before the interval")
			require.NoError(t, rn.Router.Close())
			// A transaction's offsets read as committed once the broker
			// wrote its markers, just after the transaction ended.
			assert.Eventually(t, func() bool {
				return committedOffsetNow(admin, cfg.Consumer.GroupID, topic) == 20
			}, 5*time.Second, 10*time.Millisecond, "the stop commits")
		})
	}
}
