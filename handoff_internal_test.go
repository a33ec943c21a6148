package kafkaevents

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/embedded"
)

func TestHandoffLingerIsAQuarterOfTheShortestDelay(t *testing.T) {
	for _, tc := range []struct {
		shortest, linger, want time.Duration
	}{
		{shortest: 100 * time.Millisecond, linger: 5 * time.Millisecond, want: 25 * time.Millisecond},
		{shortest: 30 * time.Second, linger: 5 * time.Millisecond, want: handoffMaxLinger},
		{shortest: 40 * time.Millisecond, linger: 5 * time.Millisecond, want: 10 * time.Millisecond},
		{shortest: 10 * time.Millisecond, linger: 5 * time.Millisecond, want: 5 * time.Millisecond},
		{shortest: 100 * time.Millisecond, linger: 50 * time.Millisecond, want: 50 * time.Millisecond},
		{shortest: 2 * time.Millisecond, linger: NoLinger, want: 0},
		{shortest: 100 * time.Millisecond, linger: NoLinger, want: 25 * time.Millisecond},
	} {
		if got := handoffLinger(tc.shortest, tc.linger); got != tc.want {
			t.Errorf("handoffLinger(%s, %s) = %s; want %s", tc.shortest, tc.linger, got, tc.want)
		}
	}
}

// TestHandoffProducerLingersAndWrites: with a shortest retry delay of 100ms
// the hand-off records go through a producer of their own that lingers 25ms
// and writes them; with 10ms they go through the stack's producer.
func TestHandoffProducerLingersAndWrites(t *testing.T) {
	b := embedded.New(t, embedded.Topics("handoff-out"))
	newStack := func(t *testing.T) *Stack {
		// The held producer is what the hand-offs use without transactions.
		s, err := New(Config{Brokers: b.Addrs(), ServiceName: "handoff", LogLevel: "error", Producer: ProducerConfig{ExactlyOnceHandoffs: Bool(false)}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	s := newStack(t)
	s.mu.Lock()
	require.NoError(t, s.startHandoffProducer(t.Context(), 100*time.Millisecond))
	s.mu.Unlock()
	require.NotNil(t, s.handoff.held.Load(), "a producer of its own")
	assert.Equal(t, 25*time.Millisecond, s.handoffClient.Config().Producer.Flush.Frequency)

	acked := make(chan error, 1)
	rec := &sarama.ProducerMessage{Topic: "handoff-out", Value: sarama.StringEncoder("retry me")}
	s.handoff.SendRecordAsync(context.Background(), rec, func(err error) { acked <- err })
	select {
	case err := <-acked:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the hand-off producer never answered")
	}
	assert.GreaterOrEqual(t, rec.Offset, int64(0), "written by the broker")

	short := newStack(t)
	short.mu.Lock()
	require.NoError(t, short.startHandoffProducer(t.Context(), 10*time.Millisecond))
	short.mu.Unlock()
	assert.Nil(t, short.handoff.held.Load(), "2ms is no longer than the stack's own 5ms: the stack's producer")
}
