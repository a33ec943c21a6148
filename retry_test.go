package kafkaevents_test

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/wire"
)

// delivery is one call of a test handler.
type delivery struct {
	At         time.Time
	RetryCount int
	RetryAfter string
	Source     wire.Source
	Payload    string
}

type recorder struct {
	mu   sync.Mutex
	list []delivery
}

func (r *recorder) add(msg *message.Message) delivery {
	d := wire.DeliveryOf(msg)
	dv := delivery{At: time.Now(), RetryCount: d.RetryCount, RetryAfter: msg.Metadata.Get(wire.HeaderRetryAfter), Source: d.Source, Payload: string(msg.Payload)}
	r.mu.Lock()
	r.list = append(r.list, dv)
	r.mu.Unlock()
	return dv
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

func TestRetryAttemptsThenDLQ(t *testing.T) {
	env := newEnv(t)
	topic := uniq("retry-all")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("retryall")
	rec := &recorder{}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Retry.alwaysFails", func(msg *message.Message) error {
			rec.add(msg)
			return errors.New("boom")
		})
		require.NoError(t, err)
	})
	c := env.collect(t, append(rn.Stack.RetryTopics(), rn.Stack.DLQTopic())...)
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k1", Value: "payload-1", Headers: map[string]string{"x-tenant": "acme"}})
	require.NoError(t, err)

	dlqRecs := c.WaitFor(t, 1, 30*time.Second, onTopic(rn.Stack.DLQTopic()))
	require.Eventually(t, func() bool { return rec.count() == 4 }, 5*time.Second, 10*time.Millisecond)

	// The deliveries: the first, then x-retry-count 1..3, never before due.
	ds := rec.all()
	for i, d := range ds {
		assert.Equal(t, i, d.RetryCount, "delivery %d", i)
		if i > 0 {
			due, err := time.Parse(time.RFC3339Nano, d.RetryAfter)
			require.NoError(t, err)
			assert.False(t, d.At.Before(due), "retry %d delivered %s early", i, due.Sub(d.At))
		}
	}
	// The retry records: policy delays 100ms, 200ms, 400ms in their lanes.
	retries := c.Records(func(r record) bool { return r.Topic != rn.Stack.DLQTopic() })
	require.Len(t, retries, 3)
	slices.SortFunc(retries, func(a, b record) int {
		return cmp.Compare(atoi(a.Headers[wire.HeaderRetryCount]), atoi(b.Headers[wire.HeaderRetryCount]))
	})
	for i, r := range retries {
		n := i + 1
		assert.Equal(t, strconv.Itoa(n), r.Headers[wire.HeaderRetryCount])
		want := 100 * time.Millisecond << (n - 1)
		assert.Equal(t, fmt.Sprintf("%s.retry.%dms", cfg.ServiceName, want.Milliseconds()), r.Topic)
		due, err := time.Parse(time.RFC3339Nano, r.Headers[wire.HeaderRetryAfter])
		require.NoError(t, err)
		failed, err := time.Parse(time.RFC3339Nano, r.Headers[wire.HeaderFailedAt])
		require.NoError(t, err)
		assert.Equal(t, want, due.Sub(failed), "delay of retry %d", n)
		assert.Equal(t, "k1", r.Key)
		assert.Equal(t, "payload-1", r.Value)
		assert.Equal(t, "acme", r.Headers["x-tenant"])
		assert.Equal(t, topic, r.Headers[wire.HeaderOriginalTopic])
		assert.Equal(t, "Retry.alwaysFails", r.Headers[wire.HeaderHandlerID])
		assert.Equal(t, "boom", r.Headers[wire.HeaderErrorMessage])
		assert.NotEmpty(t, r.Headers[wire.HeaderFirstFailedAt])
		assert.NotEmpty(t, r.Headers[wire.HeaderCorrelationID])
	}
	assert.Equal(t, retries[0].Headers[wire.HeaderFirstFailedAt], retries[2].Headers[wire.HeaderFirstFailedAt])
	d := dlqRecs[0]
	assert.Equal(t, string(wire.ReasonRetriesExhausted), d.Headers[wire.HeaderDLQReason])
	assert.Equal(t, "3", d.Headers[wire.HeaderRetryCount])
	assert.Equal(t, "0", d.Headers[wire.HeaderOriginalPartition], "the original position survives every retry")
	assert.Equal(t, "0", d.Headers[wire.HeaderOriginalOffset])
	for _, r := range retries {
		assert.Equal(t, "0", r.Headers[wire.HeaderOriginalOffset], "retry %s", r.Headers[wire.HeaderRetryCount])
	}
	assert.Equal(t, retries[0].Headers[wire.HeaderCorrelationID], d.Headers[wire.HeaderCorrelationID])

	// The retry consumer counts a delivery once the dispatch is acknowledged,
	// which is after the DLQ record of the last one was written.
	require.Eventually(t, func() bool { return rn.Stack.RetryStats().Handlers["Retry.alwaysFails"].Delivered == 3 }, 5*time.Second, 10*time.Millisecond)
	st := rn.Stack.RetryStats().Handlers["Retry.alwaysFails"]
	assert.Equal(t, int64(3), st.Scheduled)
	assert.Equal(t, int64(3), st.Delivered)
	assert.Equal(t, int64(1), st.Exhausted)
	assert.Equal(t, int64(4), st.ErrorsEncountered)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestFailTwiceSucceedsOnThirdDelivery(t *testing.T) {
	env := newEnv(t)
	topic := uniq("retry-twice")
	env.createTopics(t, 1, topic)
	rec := &recorder{}
	rn := start(t, env.baseConfig("twice"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Retry.failsTwice", func(msg *message.Message) error {
			if d := rec.add(msg); d.RetryCount < 2 {
				return fmt.Errorf("failure %d", d.RetryCount+1)
			}
			return nil
		})
		require.NoError(t, err)
	})
	c := env.collect(t, rn.Stack.DLQTopic())
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rec.count() == 3 }, 30*time.Second, 10*time.Millisecond)
	waitSettled(t, rn.Stack, topic, 30*time.Second) // a fourth delivery or a DLQ record would have come first
	assert.Equal(t, 3, rec.count())
	assert.Empty(t, c.Records(nil), "a message handled on its third delivery must not reach the DLQ")
	st := rn.Stack.RetryStats().Handlers["Retry.failsTwice"]
	assert.Equal(t, int64(1), st.MessagesProcessed)
	assert.Equal(t, int64(2), st.Scheduled)
	assert.Equal(t, int64(0), st.Exhausted)
	assert.Equal(t, int64(0), rn.Stack.DLQStats().MessagesStored)
}

// TestRetryPrecisionMixedDelays puts 1,000 retries with delays of 100ms, 1s
// and 5s in flight at once and checks that none is delivered early and that
// lanes keep the short delays from waiting behind the long ones.
func TestRetryPrecisionMixedDelays(t *testing.T) {
	if testing.Short() {
		t.Skip("takes several seconds")
	}
	env := newEnv(t)
	delays := []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second}
	topics := make([]string, len(delays))
	for i := range delays {
		topics[i] = uniq("precision")
	}
	env.createTopics(t, 3, topics...)
	cfg := env.baseConfig("precision")
	cfg.Retry.Partitions = 3
	var mu sync.Mutex
	var lateness []time.Duration
	var early atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		for i, d := range delays {
			_, err := s.AddHandler(r, topics[i], "Precision.h"+d.String(), func(msg *message.Message) error {
				dv := wire.DeliveryOf(msg)
				if dv.RetryCount == 0 {
					return errors.New("fail once")
				}
				due, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(wire.HeaderRetryAfter))
				if err != nil {
					return wire.Permanent(err)
				}
				late := time.Since(due)
				if late < 0 {
					early.Add(1)
				}
				mu.Lock()
				lateness = append(lateness, late)
				mu.Unlock()
				return nil
			}, kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: d, MaxDelay: d}))
			require.NoError(t, err)
		}
	})
	const n = 1000
	ms := make([]kafkaevents.Message, 0, n)
	for i := range n {
		ms = append(ms, kafkaevents.Message{Topic: topics[i%3], Key: strconv.Itoa(i), Value: "x"})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lateness) >= n
	}, 60*time.Second, 50*time.Millisecond)

	mu.Lock()
	sorted := slices.Clone(lateness)
	mu.Unlock()
	slices.Sort(sorted)
	p50, p99, maxL := sorted[len(sorted)/2], sorted[len(sorted)*99/100], sorted[len(sorted)-1]
	t.Logf("retry lateness over %d retries (100ms/1s/5s): p50=%s p99=%s max=%s early=%d", len(sorted), p50, p99, maxL, early.Load())
	assert.Zero(t, early.Load(), "no retry may be delivered before x-retry-after")
	// A short delay waiting behind a long one would be late by about the
	// gap between the lanes (seconds): that, not the lateness itself, is
	// what this checks. The lateness is a figure of make bench (figure 3).
	assert.Less(t, p99, 900*time.Millisecond, "retries waited behind longer ones")
	st := rn.Stack.RetryStats()
	assert.Zero(t, st.Lateness.Early)
}

func TestRetryDisabledPerHandlerGoesToDLQ(t *testing.T) {
	env := newEnv(t)
	topic := uniq("noretry")
	env.createTopics(t, 1, topic)
	var calls atomic.Int32
	rn := start(t, env.baseConfig("noretry"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Simple.handle", func(msg *message.Message) error {
			calls.Add(1)
			return errors.New("simple failure")
		}, kafkaevents.WithoutRetry())
		require.NoError(t, err)
	})
	c := env.collect(t, rn.Stack.DLQTopic())
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
	require.NoError(t, err)
	recs := c.WaitFor(t, 1, 30*time.Second, nil)
	assert.Equal(t, string(wire.ReasonRetryDisabled), recs[0].Headers[wire.HeaderDLQReason])
	assert.Equal(t, "0", recs[0].Headers[wire.HeaderRetryCount])
	assert.Equal(t, int32(1), calls.Load())
}

func TestWaitingRetriesSurviveRestart(t *testing.T) {
	env := newEnv(t)
	topic := uniq("restart")
	env.createTopics(t, 2, topic)
	cfg := env.baseConfig("restart")
	cfg.Retry.Attempts = 1
	cfg.Retry.BaseDelay = 3 * time.Second
	cfg.Retry.MaxDelay = 3 * time.Second
	rec := &recorder{}
	handler := func(msg *message.Message) error {
		if rec.add(msg).RetryCount == 0 {
			return errors.New("fail first")
		}
		return nil
	}
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Restart.handle", handler)
		require.NoError(t, err)
	}
	first := start(t, cfg, setup)
	const n = 20
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: topic, Key: strconv.Itoa(i), Value: strconv.Itoa(i)}
	}
	_, err := first.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return first.Stack.RetryStats().Scheduled == n }, 30*time.Second, 10*time.Millisecond)
	stopping := time.Now()
	first.Stop() // while every retry still waits
	took := time.Since(stopping)
	t.Logf("shutdown with %d retries waiting took %s", n, took)
	assert.Less(t, took, cfg.Retry.BaseDelay, "shutdown ends the waits instead of sitting them out")

	for _, d := range rec.all() {
		require.Zero(t, d.RetryCount, "no retry may be due yet")
	}
	start(t, cfg, setup)
	require.Eventually(t, func() bool { return rec.count() >= 2*n }, 60*time.Second, 20*time.Millisecond)
	retried := map[string]bool{}
	for _, d := range rec.all() {
		if d.RetryCount == 1 {
			due, err := time.Parse(time.RFC3339Nano, d.RetryAfter)
			require.NoError(t, err)
			assert.False(t, d.At.Before(due), "delivered %s early", due.Sub(d.At))
			retried[d.Payload] = true
		}
	}
	assert.Len(t, retried, n, "every waiting retry is delivered after the restart")
}

func TestRetriesExhaustedWithoutDLQReturnTheError(t *testing.T) {
	env := newEnv(t)
	topic := uniq("nodlq")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("nodlq")
	cfg.DLQ.Enabled = kafkaevents.Bool(false)
	cfg.Retry.Attempts = 1
	var calls atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "NoDLQ.handle", func(msg *message.Message) error {
			calls.Add(1)
			return errors.New("always")
		})
		require.NoError(t, err)
	})
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
	require.NoError(t, err)
	// First delivery, one retry, then the error goes back to Watermill,
	// which redelivers the retry: nothing is dropped.
	require.Eventually(t, func() bool { return calls.Load() >= 4 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(1), rn.Stack.RetryStats().Scheduled)
	assert.False(t, rn.Stack.DLQEnabled())
}

func TestUnroutableRetryRecordsGoToDLQ(t *testing.T) {
	env := newEnv(t)
	topic := uniq("unroutable")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("unroutable")
	var calls atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Known.handle", func(msg *message.Message) error {
			calls.Add(1)
			return nil
		})
		require.NoError(t, err)
	})
	lane := rn.Stack.RetryTopics()[0]
	c := env.collect(t, rn.Stack.DLQTopic())
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	due := time.Now().UTC().Format(wire.TimeFormat)
	cases := []struct {
		name    string
		headers map[string]string
	}{
		{"unknown handler", map[string]string{wire.HeaderHandlerID: "Nobody.handle", wire.HeaderOriginalTopic: topic, wire.HeaderRetryCount: "1", wire.HeaderRetryAfter: due}},
		{"non-numeric retry count", map[string]string{wire.HeaderHandlerID: "Known.handle", wire.HeaderOriginalTopic: topic, wire.HeaderRetryCount: "one", wire.HeaderRetryAfter: due}},
		{"unparsable retry-after", map[string]string{wire.HeaderHandlerID: "Known.handle", wire.HeaderOriginalTopic: topic, wire.HeaderRetryCount: "1", wire.HeaderRetryAfter: "tomorrow"}},
		{"no headers", map[string]string{}},
	}
	for _, tc := range cases {
		pm := &sarama.ProducerMessage{Topic: lane, Key: sarama.StringEncoder(tc.name), Value: sarama.StringEncoder("payload of " + tc.name)}
		for k, v := range tc.headers {
			pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
		_, _, err := raw.SendMessage(pm)
		require.NoError(t, err)
	}
	recs := c.WaitFor(t, len(cases), 30*time.Second, nil)
	for _, r := range recs {
		assert.Equal(t, string(wire.ReasonUnroutable), r.Headers[wire.HeaderDLQReason], r.Key)
		assert.Equal(t, "payload of "+r.Key, r.Value)
		assert.NotEmpty(t, r.Headers[wire.HeaderErrorMessage])
	}
	assert.Zero(t, calls.Load(), "no corrupt retry record reaches a handler")
	require.Eventually(t, func() bool { return rn.Stack.RetryStats().Unroutable == int64(len(cases)) },
		5*time.Second, 10*time.Millisecond, "every corrupt record counted as unroutable")
}

// TestWaitingRetriesMoveOnRebalance starts a second instance while retries
// wait: the retry partitions are rebalanced between the two, waits end
// without delivering early, and every retry is delivered.
func TestWaitingRetriesMoveOnRebalance(t *testing.T) {
	env := newEnv(t)
	topic := uniq("rebalance")
	env.createTopics(t, 3, topic)
	cfg := env.baseConfig("rebalance")
	cfg.Retry.Attempts = 1
	cfg.Retry.BaseDelay = 6 * time.Second
	cfg.Retry.MaxDelay = 6 * time.Second
	cfg.Retry.Partitions = 3
	cfg.Consumer.HeartbeatInterval = 500 * time.Millisecond
	rec := &recorder{}
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Rebalance.handle", func(msg *message.Message) error {
			if rec.add(msg).RetryCount == 0 {
				return errors.New("fail first")
			}
			return nil
		})
		require.NoError(t, err)
	}
	first := start(t, cfg, setup)
	const n = 30
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: topic, Key: strconv.Itoa(i), Value: strconv.Itoa(i)}
	}
	_, err := first.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return first.Stack.RetryStats().Scheduled == n }, 30*time.Second, 10*time.Millisecond)
	second := start(t, cfg, setup)
	// The second instance must own retry partitions before the retries are
	// due (6s after they were scheduled), or it has nothing to take over.
	env.waitMembers(t, cfg.Consumer.GroupID+".retry", 2, 30*time.Second)

	require.Eventually(t, func() bool {
		retried := map[string]bool{}
		for _, d := range rec.all() {
			if d.RetryCount == 1 {
				retried[d.Payload] = true
			}
		}
		return len(retried) == n
	}, 60*time.Second, 20*time.Millisecond, "every retry delivered across the rebalance")
	for _, d := range rec.all() {
		if d.RetryCount == 1 {
			due, err := time.Parse(time.RFC3339Nano, d.RetryAfter)
			require.NoError(t, err)
			assert.False(t, d.At.Before(due), "delivered %s early", due.Sub(d.At))
		}
	}
	byFirst, bySecond := first.Stack.RetryStats().Delivered, second.Stack.RetryStats().Delivered
	t.Logf("retries delivered by the first instance: %d, by the second: %d", byFirst, bySecond)
	assert.Positive(t, bySecond, "the second instance took over retry partitions with waiting records")
}
