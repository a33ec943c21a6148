package kafkaevents_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestWaitingRetriesSurviveRestartWithoutFromBeginning is
// TestWaitingRetriesSurviveRestart with the default offset reset: new groups
// start at the end of their topics. The retry consumer group must still read
// the retries that waited when the first instance stopped, although it had
// committed nothing on their partitions yet.
func TestWaitingRetriesSurviveRestartWithoutFromBeginning(t *testing.T) {
	env := newEnv(t)
	topic := uniq("restart-newest")
	env.createTopics(t, 2, topic)
	cfg := env.baseConfig("restartnewest")
	cfg.Subscriptions.FromBeginning = kafkaevents.Bool(false)
	cfg.Retry.Attempts = 1
	cfg.Retry.BaseDelay = 2 * time.Second
	cfg.Retry.MaxDelay = 2 * time.Second
	rec := &recorder{}
	var probed sync.Map // partition -> true: a probe was consumed from it
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "RestartNewest.handle", func(msg *message.Message) error {
			if string(msg.Payload) == probePayload {
				p, _ := kafka.MessagePartitionFromCtx(msg.Context())
				probed.Store(p, true)
				return nil
			}
			if rec.add(msg).RetryCount == 0 {
				return errors.New("fail first")
			}
			return nil
		})
		require.NoError(t, err)
	}
	first := start(t, cfg, setup)
	// The main group starts at the end too: publish once it reads both
	// partitions. A stable group is not enough; each partition's starting
	// offset is looked up once the claim starts, and a record written before
	// that would be skipped. So probe each partition until it is read.
	require.Eventually(t, func() bool { return first.Stack.Readiness(t.Context()).Consumer }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		all := true
		for p := range int32(2) {
			if _, ok := probed.Load(p); !ok {
				all = false
				// A failed send is tried again at the next check.
				_, _ = first.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Partition: &p, Value: probePayload})
			}
		}
		return all
	}, 30*time.Second, 200*time.Millisecond, "the main group reads both partitions")
	const n = 10
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: topic, Key: strconv.Itoa(i), Value: strconv.Itoa(i)}
	}
	_, err := first.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return first.Stack.RetryStats().Scheduled == n }, 30*time.Second, 10*time.Millisecond)
	first.Stop() // while every retry waits: nothing was committed on the retry topics
	for _, d := range rec.all() {
		require.Zero(t, d.RetryCount, "no retry may be due yet")
	}

	start(t, cfg, setup)
	require.Eventually(t, func() bool { return rec.count() >= 2*n }, 60*time.Second, 20*time.Millisecond,
		"every waiting retry is delivered after the restart (%d of %d deliveries)", rec.count(), 2*n)
	retried := map[string]bool{}
	for _, d := range rec.all() {
		if d.RetryCount == 1 {
			retried[d.Payload] = true
		}
	}
	assert.Len(t, retried, n)
}

// probePayload is the payload of the records that check a consumer reads a
// partition; handlers ignore them.
const probePayload = "probe"
