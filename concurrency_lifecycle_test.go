package kafkaevents_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// TestConcurrencyRetryAndDLQ: a concurrent handler's failed records go to
// their retry lane or the DLQ as a sequential handler's do, and the records
// behind them with the same key go on.
func TestConcurrencyRetryAndDLQ(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-retry")
	env.createTopics(t, 2, topic)
	var mu sync.Mutex
	deliveries := map[string]int{}
	rn := start(t, env.baseConfig("conc-retry"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.flaky", func(msg *message.Message) error {
			v := string(msg.Payload)
			mu.Lock()
			deliveries[v]++
			d := deliveries[v]
			mu.Unlock()
			switch {
			case strings.HasPrefix(v, "poison"):
				return errors.New("always fails")
			case strings.HasPrefix(v, "flaky") && d == 1:
				return errors.New("fails once")
			}
			return nil
		}, kafkaevents.WithConcurrency(32), kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}))
		require.NoError(t, err)
	})
	dlq := env.collect(t, rn.Stack.DLQTopic())
	var msgs []kafkaevents.Message
	for i := range 200 {
		v := "ok-" + strconv.Itoa(i)
		switch i % 20 {
		case 0:
			v = "poison-" + strconv.Itoa(i)
		case 1:
			v = "flaky-" + strconv.Itoa(i)
		}
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "k" + strconv.Itoa(i%7), Value: v})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	dead := dlq.WaitFor(t, 10, 30*time.Second, nil)
	for _, r := range dead {
		assert.True(t, strings.HasPrefix(r.Value, "poison"), r.Value)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range 200 {
			if i%20 == 1 && deliveries["flaky-"+strconv.Itoa(i)] < 2 {
				return false
			}
			if i%20 > 1 && deliveries["ok-"+strconv.Itoa(i)] < 1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := range 200 {
		if i%20 == 0 {
			assert.Equal(t, 2, deliveries["poison-"+strconv.Itoa(i)], "first delivery and one retry")
		}
	}
}

// TestConcurrencyGracefulShutdownDrains: a graceful stop lets the records
// in their handlers finish and commits them; the next instance handles only
// what was not handled.
func TestConcurrencyGracefulShutdownDrains(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-drain")
	env.createTopics(t, 2, topic)
	cfg := env.baseConfig("conc-drain")
	check := newOrderCheck()
	var inHandler atomic.Int32
	handler := func(msg *message.Message) error {
		defer check.enter(msg)()
		inHandler.Add(1)
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.drain", handler, kafkaevents.WithConcurrency(32))
		require.NoError(t, err)
	})
	_, err := rn.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, 2000, 100))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return inHandler.Load() > 200 }, 30*time.Second, 5*time.Millisecond)
	rn.Stop()
	assert.Equal(t, int32(0), check.running.Load(), "the stop waited for the handlers")

	rn2 := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.drain", handler, kafkaevents.WithConcurrency(32))
		require.NoError(t, err)
	})
	require.Eventually(t, func() bool { return check.distinct() == 2000 }, 60*time.Second, 20*time.Millisecond)
	waitSettled(t, rn2.Stack, topic, 30*time.Second) // a redelivery would have come before
	assert.Equal(t, 0, check.handledTwice(), "a graceful stop commits what was handled")
}

// TestConcurrencyRebalance: a second instance joins while records are in
// flight; every record is handled, none is lost.
func TestConcurrencyRebalance(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-rebalance")
	env.createTopics(t, 4, topic)
	cfg := env.baseConfig("conc-rebalance")
	check := newOrderCheck()
	handler := func(msg *message.Message) error {
		defer check.enter(msg)()
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.rebalance", handler, kafkaevents.WithConcurrency(32))
		require.NoError(t, err)
	}
	a := start(t, cfg, setup)
	_, err := a.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, 4000, 300))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return check.distinct() > 500 }, 30*time.Second, 5*time.Millisecond)
	start(t, cfg, setup)
	require.Eventually(t, func() bool { return check.distinct() == 4000 }, 90*time.Second, 20*time.Millisecond, "every record handled")
}

// TestConcurrencyOptionErrors: a concurrency out of range is an error that
// names the option and the range.
func TestConcurrencyOptionErrors(t *testing.T) {
	env := newEnv(t)
	s, err := kafkaevents.New(env.baseConfig("conc-errors"))
	require.NoError(t, err)
	defer s.Close()
	r, err := message.NewRouter(message.RouterConfig{}, nil)
	require.NoError(t, err)
	noop := func(*message.Message) error { return nil }
	for _, n := range []int{0, -3, kafkaevents.MaxConcurrency + 1} {
		_, err := s.AddHandler(r, "t", "h"+strconv.Itoa(n), noop, kafkaevents.WithConcurrency(n))
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("WithConcurrency(%d)", n))
		assert.Contains(t, err.Error(), "want 1 to 512")
	}
	_, err = s.AddHandler(r, "t", "h", noop, kafkaevents.WithConcurrency(kafkaevents.MaxConcurrency))
	require.NoError(t, err)

	cfg := env.baseConfig("conc-errors")
	cfg.Consumer.Concurrency = 1000
	_, err = kafkaevents.New(cfg)
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Consumer.Concurrency")
	assert.Contains(t, err.Error(), "KAFKA_CONSUMER_CONCURRENCY")
}

// TestConcurrencyDueRetriesRunSideBySide: the due retries of a handler with
// a concurrency above 1 are dispatched beside each other, not one per retry
// partition at a time, and each is delivered once.
func TestConcurrencyDueRetriesRunSideBySide(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-retries")
	env.createTopics(t, 1, topic)
	var running, peak atomic.Int32
	var mu sync.Mutex
	retried := map[string]int{}
	rn := start(t, env.baseConfig("conc-retries"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.retried", func(msg *message.Message) error {
			if wire.DeliveryOf(msg).RetryCount == 0 {
				return errors.New("first delivery fails")
			}
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			mu.Lock()
			retried[string(msg.Payload)]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			return nil
		}, kafkaevents.WithConcurrency(16), kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}))
		require.NoError(t, err)
	})
	var msgs []kafkaevents.Message
	for i := range 64 {
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "k" + strconv.Itoa(i), Value: "v" + strconv.Itoa(i)})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(retried) == 64
	}, 30*time.Second, 10*time.Millisecond)
	waitSettled(t, rn.Stack, topic, 30*time.Second) // a second delivery would have come before
	mu.Lock()
	for v, n := range retried {
		assert.Equal(t, 1, n, v)
	}
	mu.Unlock()
	// Two retry partitions, one record at a time each, would give 2.
	assert.Greater(t, peak.Load(), int32(4), "due retries ran side by side")
}

// TestConcurrencyReprocessRunsSideBySide: reprocessed DLQ records of a
// handler with a concurrency above 1 are delivered beside each other, each
// once, and the run's committed offset covers them all: a second run finds
// nothing to do.
func TestConcurrencyReprocessRunsSideBySide(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-reprocess")
	env.createTopics(t, 1, topic)
	var broken atomic.Bool
	broken.Store(true)
	var running, peak atomic.Int32
	var mu sync.Mutex
	reprocessed := map[string]int{}
	rn := start(t, env.baseConfig("conc-reprocess"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.replayed", func(msg *message.Message) error {
			if broken.Load() {
				return errors.New("downstream is down")
			}
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			mu.Lock()
			reprocessed[string(msg.Payload)]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			return nil
		}, kafkaevents.WithConcurrency(16), kafkaevents.WithoutRetry())
		require.NoError(t, err)
	})
	dead := env.collect(t, rn.Stack.DLQTopic())
	var msgs []kafkaevents.Message
	for i := range 64 {
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "k" + strconv.Itoa(i%8), Value: "v" + strconv.Itoa(i)})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	dead.WaitFor(t, 64, 30*time.Second, nil)

	broken.Store(false)
	p, err := rn.Stack.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: topic, BatchSize: 10, Timeout: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, dlq.StateCompleted, p.State)
	assert.EqualValues(t, 64, p.Reprocessed)
	assert.Zero(t, p.Remaining)
	mu.Lock()
	assert.Len(t, reprocessed, 64)
	for v, n := range reprocessed {
		assert.Equal(t, 1, n, v)
	}
	mu.Unlock()
	// One record at a time per DLQ partition would give at most the DLQ's
	// partition count.
	parts, err := env.client(t).Partitions(rn.Stack.DLQTopic())
	require.NoError(t, err)
	assert.Greater(t, int(peak.Load()), len(parts), "reprocessed records ran side by side")

	again, err := rn.Stack.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: topic})
	require.NoError(t, err)
	assert.Zero(t, again.Reprocessed, "the first run committed every record it handled")
}

// TestConcurrencyReprocessStopKeepsUnfinished: a reprocess run stopped while
// one record is still in its handler commits nothing at or past that record,
// whatever finished after it; the next run delivers it again.
func TestConcurrencyReprocessStopKeepsUnfinished(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-reprocess-stop")
	env.createTopics(t, 1, topic)
	var broken atomic.Bool
	broken.Store(true)
	gate := make(chan struct{})
	var mu sync.Mutex
	handled := map[string]int{}
	entered := make(chan struct{}, 1)
	rn := start(t, env.baseConfig("conc-reprocess-stop"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.stuck", func(msg *message.Message) error {
			if broken.Load() {
				return errors.New("downstream is down")
			}
			v := string(msg.Payload)
			mu.Lock()
			handled[v]++
			first := handled[v] == 1
			mu.Unlock()
			if v == "stuck" && first {
				entered <- struct{}{}
				<-gate
			}
			return nil
		}, kafkaevents.WithConcurrency(8), kafkaevents.WithoutRetry())
		require.NoError(t, err)
	})
	dead := env.collect(t, rn.Stack.DLQTopic())
	// One key: every record lands on one DLQ partition, the stuck one first.
	msgs := []kafkaevents.Message{{Topic: topic, Key: "k", Value: "stuck"}}
	for i := range 40 {
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "k", Value: "v" + strconv.Itoa(i)})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	dead.WaitFor(t, len(msgs), 30*time.Second, nil)

	broken.Store(false)
	require.NoError(t, rn.Stack.StartReprocess(dlq.ReprocessOptions{Topic: topic, BatchSize: 5, Timeout: 30 * time.Second}))
	<-entered
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(msgs)
	}, 30*time.Second, 10*time.Millisecond, "the records after the stuck one finish beside it")
	rn.Stack.StopReprocess(topic)
	require.Eventually(t, func() bool { return !rn.Stack.ReprocessActive() }, 30*time.Second, 10*time.Millisecond)
	close(gate)

	p, err := rn.Stack.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: topic, Timeout: 30 * time.Second})
	require.NoError(t, err)
	assert.EqualValues(t, len(msgs), p.Reprocessed, "nothing was committed past the stuck record")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, handled["stuck"])
}
