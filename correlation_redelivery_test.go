package kafkaevents_test

import (
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
)

// TestCorrelationIDSurvivesARedelivery: a record produced without a
// correlation ID gets one derived from the record, so that its redelivery
// after a stop (its offset uncommitted) carries the same ID as the first
// delivery, not a new random one.
func TestCorrelationIDSurvivesARedelivery(t *testing.T) {
	env := newEnv(t)
	topic := uniq("corr-redeliver")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("corr-redeliver")
	cfg.Consumer.ShutdownTimeout = time.Second
	var mu sync.Mutex
	var ids []string
	seen := func(msg *message.Message) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, correlation.FromContext(msg.Context()))
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.corr", func(msg *message.Message) error {
			seen(msg)
			<-msg.Context().Done() // stuck until the stop gives up on it
			return msg.Context().Err()
		})
		require.NoError(t, err)
	})
	// Another client's record, with no correlation header (the stack's own
	// producer would stamp one).
	p, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("v")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count() == 1 }, 30*time.Second, 5*time.Millisecond)
	rn.Stop()

	start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.corr", func(msg *message.Message) error {
			seen(msg)
			return nil
		})
		require.NoError(t, err)
	})
	require.Eventually(t, func() bool { return count() == 2 }, 30*time.Second, 5*time.Millisecond, "delivered again after the restart")
	mu.Lock()
	defer mu.Unlock()
	assert.Regexp(t, `^corr-[0-9a-z]{10}-\d{13}$`, ids[0])
	assert.Equal(t, ids[0], ids[1], "the same ID on the redelivery")
}
