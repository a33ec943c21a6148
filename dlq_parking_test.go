package kafkaevents_test

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// TestReprocessParksAtMaxReprocess: a record that keeps failing comes back
// to the DLQ with x-reprocess-count one higher after each run; once that
// count reaches DLQ.MaxReprocess, runs park it: it is counted, not
// delivered, and not stored again.
func TestReprocessParksAtMaxReprocess(t *testing.T) {
	env := newEnv(t)
	topic := uniq("parking")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("parking")
	cfg.Retry.Enabled = kafkaevents.Bool(false)
	cfg.DLQ.MaxReprocess = 2
	var deliveries atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Parking.handle", func(*message.Message) error {
			deliveries.Add(1)
			return errors.New("still broken")
		})
		require.NoError(t, err)
	})
	s := rn.Stack
	dead := env.collect(t, s.DLQTopic())
	_, err := s.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "p-1", Value: "broken"})
	require.NoError(t, err)
	dead.WaitFor(t, 1, 30*time.Second, nil)

	for count := 1; count <= cfg.DLQ.MaxReprocess; count++ {
		p, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: topic, Timeout: 30 * time.Second})
		require.NoError(t, err)
		require.Equal(t, int64(1), p.Failed, "run %d delivers the record", count)
		require.Zero(t, p.Parked, "run %d", count)
		dead.WaitFor(t, 1, 30*time.Second, func(r record) bool { return r.Headers[wire.HeaderReprocessCount] == strconv.Itoa(count) })
	}
	require.Equal(t, int32(1+cfg.DLQ.MaxReprocess), deliveries.Load())

	stored := len(dead.Records(nil))
	p, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: topic, Timeout: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, int64(1), p.Parked, "the record at the limit is parked")
	assert.Zero(t, p.Failed)
	assert.Zero(t, p.Reprocessed)
	assert.Equal(t, int64(1), s.DLQStats().MessagesParked)

	// A later record proves the handler still runs: once it is in the DLQ,
	// the parked one was neither delivered nor stored again.
	_, err = s.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "p-2", Value: "later"})
	require.NoError(t, err)
	dead.WaitFor(t, 1, 30*time.Second, func(r record) bool { return r.Value == "later" })
	assert.Equal(t, int32(2+cfg.DLQ.MaxReprocess), deliveries.Load(), "the parked record was not delivered")
	assert.Len(t, dead.Records(nil), stored+1, "the parked record was not stored again")
}
