package kafkaevents_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/wire"
)

// firstSuccess records, per key, the sequence numbers of the records in the
// order of their first successful handling, and the failures planned per
// record ("key:seq" -> failures left; -1 fails for ever, until cleared).
type firstSuccess struct {
	mu         sync.Mutex
	fail       map[string]int
	handled    map[string]bool
	last       map[string]int
	violations []string
	calls      int
}

func newFirstSuccess() *firstSuccess {
	return &firstSuccess{fail: map[string]int{}, handled: map[string]bool{}, last: map[string]int{}}
}

// handle is a handler of "key:seq" payloads.
func (f *firstSuccess) handle(msg *message.Message) error {
	v := string(msg.Payload)
	k, seqText, _ := strings.Cut(v, ":")
	seq, _ := strconv.Atoi(seqText)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	switch n := f.fail[v]; {
	case n < 0:
		return wire.Permanent(errors.New("planned permanent failure of " + v))
	case n > 0:
		f.fail[v] = n - 1
		return errors.New("planned failure of " + v)
	}
	if f.handled[v] {
		return nil
	}
	f.handled[v] = true
	if last, ok := f.last[k]; ok && seq < last {
		f.violations = append(f.violations, fmt.Sprintf("%s after %s:%d", v, k, last))
	}
	f.last[k] = max(seq, f.last[k])
	return nil
}

func (f *firstSuccess) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.handled)
}

func (f *firstSuccess) has(v string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handled[v]
}

// assertInOrder checks that every key's records were first handled
// successfully in offset order.
func (f *firstSuccess) assertInOrder(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Empty(t, f.violations, "order of first successful handling per key")
}

func (f *firstSuccess) setFail(v string, n int) {
	f.mu.Lock()
	f.fail[v] = n
	f.mu.Unlock()
}

// keyOrderConfig is a config whose handlers keep key order, with short
// retry delays.
func (e *testEnv) keyOrderConfig(name string) kafkaevents.Config {
	cfg := e.baseConfig(name)
	cfg.Retry.KeepKeyOrder = true
	cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 200*time.Millisecond, time.Second
	return cfg
}

// TestKeepKeyOrderAcrossRetries: K-1 fails twice and then succeeds; K-2 to
// K-5 come right after it and are handled only after it, in order, while
// 300 other keys flow (a tenth of them failing once, with records behind
// them too). Without KeepKeyOrder, K-2 is handled while K-1 waits in its
// retry lane.
func TestKeepKeyOrderAcrossRetries(t *testing.T) {
	for _, conc := range []int{1, 64} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("keep-order")
			env.createTopics(t, 3, topic)
			f := newFirstSuccess()
			f.setFail("K:1", 2)
			var batch []kafkaevents.Message
			for seq := 1; seq <= 5; seq++ {
				batch = append(batch, kafkaevents.Message{Topic: topic, Key: "K", Value: fmt.Sprintf("K:%d", seq)})
			}
			for i := range 300 {
				k := "o" + strconv.Itoa(i)
				if i%10 == 0 {
					f.setFail(k+":1", 1)
				}
				batch = append(batch,
					kafkaevents.Message{Topic: topic, Key: k, Value: k + ":1"},
					kafkaevents.Message{Topic: topic, Key: k, Value: k + ":2"})
			}
			rn := start(t, env.keyOrderConfig("keep-order"), func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.keep", f.handle, kafkaevents.WithConcurrency(conc))
				require.NoError(t, err)
			})
			_, err := rn.Stack.Producer().SendBatch(t.Context(), batch)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return f.count() == len(batch) }, 60*time.Second, 20*time.Millisecond,
				"every record handled once its key was released")
			f.assertInOrder(t)
			require.Eventually(t, func() bool {
				st := rn.Stack.KeyOrderStats()
				return st != nil && len(st.Handlers) == 1 && st.Handlers[0].ParkedKeys == 0 && st.Handlers[0].SetAside == 0
			}, 10*time.Second, 20*time.Millisecond, "no key left parked")
		})
	}
}

// TestKeepKeyOrderSurvivesARestart: K-1 fails until the first instance
// stops, with K-2 and K-3 set aside behind it; a second instance of the
// service (a new stack, same group) starts with the key still parked, hands
// out nothing of K before K-1's retry succeeds, then K-2, K-3 and K-4 (sent
// after the restart) in order.
func TestKeepKeyOrderSurvivesARestart(t *testing.T) {
	env := newEnv(t)
	topic := uniq("keep-restart")
	env.createTopics(t, 2, topic)
	cfg := env.keyOrderConfig("keep-restart")
	cfg.Retry.Attempts = 10
	f := newFirstSuccess()
	f.setFail("K:1", 1000)
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.keep", f.handle)
		require.NoError(t, err)
	}
	first := start(t, cfg, setup)
	_, err := first.Stack.Producer().SendBatch(t.Context(), []kafkaevents.Message{
		{Topic: topic, Key: "K", Value: "K:1"}, {Topic: topic, Key: "K", Value: "K:2"}, {Topic: topic, Key: "K", Value: "K:3"},
		{Topic: topic, Key: "other", Value: "other:1"},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st := first.Stack.KeyOrderStats()
		return f.has("other:1") && st != nil && len(st.Handlers) == 1 && st.Handlers[0].SetAside == 2
	}, 30*time.Second, 20*time.Millisecond, "K-2 and K-3 set aside behind K-1")
	first.Stop()
	assert.False(t, f.has("K:2") || f.has("K:3"), "records of a parked key handled")

	second := start(t, cfg, setup)
	keys, err := second.Stack.ParkedKeys(t.Context(), 0)
	require.NoError(t, err)
	require.Len(t, keys, 1, "the key is parked after the restart")
	assert.Equal(t, "K", keys[0].Key)
	assert.Equal(t, 2, keys[0].SetAside)
	_, err = second.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "K", Value: "K:4"})
	require.NoError(t, err)
	time.Sleep(time.Second)
	assert.False(t, f.has("K:2") || f.has("K:4"), "records of a parked key handled after the restart")
	f.setFail("K:1", 0)
	require.Eventually(t, func() bool { return f.has("K:4") }, 30*time.Second, 20*time.Millisecond)
	f.assertInOrder(t)
}

// TestKeepKeyOrderDeadLetteredHead: a head that fails permanently goes to
// the DLQ. With the default policy its key stays parked (the DLQ record
// says "held") until an operator releases it; with DeadLetteredKey
// "release" the records behind it go on at once (the DLQ record says
// "released").
func TestKeepKeyOrderDeadLetteredHead(t *testing.T) {
	for _, policy := range []string{"hold", "release"} {
		t.Run(policy, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("keep-dlq")
			env.createTopics(t, 1, topic)
			cfg := env.keyOrderConfig("keep-dlq")
			cfg.Retry.DeadLetteredKey = policy
			f := newFirstSuccess()
			f.setFail("K:1", -1)
			rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.keep", f.handle, kafkaevents.WithConcurrency(8))
				require.NoError(t, err)
			})
			dlq := env.collect(t, rn.Stack.DLQTopic())
			_, err := rn.Stack.Producer().SendBatch(t.Context(), []kafkaevents.Message{
				{Topic: topic, Key: "K", Value: "K:1"}, {Topic: topic, Key: "K", Value: "K:2"}, {Topic: topic, Key: "K", Value: "K:3"},
				{Topic: topic, Key: "other", Value: "other:1"},
			})
			require.NoError(t, err)
			recs := dlq.WaitFor(t, 1, 30*time.Second, func(record) bool { return true })
			want := map[string]string{"hold": "held", "release": "released"}[policy]
			assert.Equal(t, want, recs[0].Headers[wire.HeaderDLQKeyOrder])
			if policy == "release" {
				require.Eventually(t, func() bool { return f.has("K:3") }, 30*time.Second, 20*time.Millisecond)
				f.assertInOrder(t)
				return
			}
			require.Eventually(t, func() bool { return f.has("other:1") }, 30*time.Second, 20*time.Millisecond)
			var keys []kafkaevents.ParkedKey
			require.Eventually(t, func() bool {
				keys, err = rn.Stack.ParkedKeys(t.Context(), 0)
				return err == nil && len(keys) == 1 && keys[0].SetAside == 2
			}, 30*time.Second, 20*time.Millisecond)
			assert.Equal(t, "dead-lettered", keys[0].Reason)
			time.Sleep(500 * time.Millisecond)
			assert.False(t, f.has("K:2"), "a record behind a held dead-lettered head was handled")
			require.NoError(t, rn.Stack.ReleaseKey(t.Context(), "Orders.keep", topic, 0, "K"))
			require.Eventually(t, func() bool { return f.has("K:3") }, 30*time.Second, 20*time.Millisecond)
			f.assertInOrder(t)
			assert.ErrorIs(t, rn.Stack.ReleaseKey(t.Context(), "Orders.keep", topic, 0, "K"), kafkaevents.ErrNotParked)
		})
	}
}

// TestKeepKeyOrderLimitStopsThePartition: with a limit of 3 parked records
// per partition, a held dead-lettered head and two records set aside fill
// it: the partition stops (the other key's record behind waits too) and
// readiness warns, until the key is released.
func TestKeepKeyOrderLimitStopsThePartition(t *testing.T) {
	env := newEnv(t)
	topic := uniq("keep-limit")
	env.createTopics(t, 1, topic)
	cfg := env.keyOrderConfig("keep-limit")
	cfg.Retry.KeyOrderLimit = 3
	f := newFirstSuccess()
	f.setFail("K:1", -1)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.keep", f.handle, kafkaevents.WithRetry(delayedretry.Policy{
			Attempts: 1, BaseDelay: 100 * time.Millisecond, KeepKeyOrder: true,
		}))
		require.NoError(t, err)
	})
	var batch []kafkaevents.Message
	for seq := 1; seq <= 5; seq++ {
		batch = append(batch, kafkaevents.Message{Topic: topic, Key: "K", Value: fmt.Sprintf("K:%d", seq)})
	}
	batch = append(batch, kafkaevents.Message{Topic: topic, Key: "other", Value: "other:1"})
	_, err := rn.Stack.Producer().SendBatch(t.Context(), batch)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, full := rn.Stack.Readiness(t.Context()).Warnings[fmt.Sprintf("key order %s/0", topic)]
		return full
	}, 30*time.Second, 20*time.Millisecond, "readiness warns of the full partition")
	time.Sleep(300 * time.Millisecond)
	assert.False(t, f.has("other:1"), "the partition went on past its key-order limit")
	st := rn.Stack.KeyOrderStats()
	require.NotNil(t, st)
	require.Len(t, st.Full, 1)
	require.NoError(t, rn.Stack.ReleaseKey(t.Context(), "Orders.keep", topic, 0, "K"))
	require.Eventually(t, func() bool { return f.has("other:1") && f.has("K:5") }, 30*time.Second, 20*time.Millisecond)
	f.assertInOrder(t)
	assert.Empty(t, rn.Stack.Readiness(t.Context()).Warnings)
}

// TestKeepKeyOrderRefusesUnordered: KeepKeyOrder with Unordered is refused.
func TestKeepKeyOrderRefusesUnordered(t *testing.T) {
	env := newEnv(t)
	s, err := kafkaevents.New(env.keyOrderConfig("keep-unordered"))
	require.NoError(t, err)
	defer s.Close()
	r, err := message.NewRouter(message.RouterConfig{}, nil)
	require.NoError(t, err)
	_, err = s.AddHandler(r, uniq("t"), "Orders.unordered", func(*message.Message) error { return nil },
		kafkaevents.WithConcurrency(8), kafkaevents.WithOrdering(kafkaevents.Unordered))
	require.ErrorContains(t, err, "KeepKeyOrder with WithOrdering(Unordered)")
}

// TestKeepKeyOrderAcrossARebalance: a key is parked on each of two
// partitions; a second instance joins and takes one of them. Whichever
// instance owns a partition keeps its key parked: the records sent after
// the rebalance wait too, and once the heads succeed every record of each
// key is handled in order.
func TestKeepKeyOrderAcrossARebalance(t *testing.T) {
	env := newEnv(t)
	topic := uniq("keep-rebalance")
	env.createTopics(t, 2, topic)
	cfg := env.keyOrderConfig("keep-rebalance")
	cfg.Retry.Attempts = 20
	f := newFirstSuccess()
	on := func(p int32, key, value string) kafkaevents.Message {
		return kafkaevents.Message{Topic: topic, Key: key, Value: value, Partition: &p}
	}
	f.setFail("A:1", 1000)
	f.setFail("B:1", 1000)
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.keep", f.handle, kafkaevents.WithConcurrency(4))
		require.NoError(t, err)
	}
	first := start(t, cfg, setup)
	_, err := first.Stack.Producer().SendBatch(t.Context(), []kafkaevents.Message{
		on(0, "A", "A:1"), on(0, "A", "A:2"), on(1, "B", "B:1"), on(1, "B", "B:2"),
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		keys, err := first.Stack.ParkedKeys(t.Context(), 0)
		return err == nil && len(keys) == 2 && keys[0].SetAside == 1 && keys[1].SetAside == 1
	}, 30*time.Second, 20*time.Millisecond, "A and B parked with one record each behind them")

	second := start(t, cfg, setup)
	env.waitMembers(t, cfg.Consumer.GroupID, 2, 60*time.Second)
	_, err = second.Stack.Producer().SendBatch(t.Context(), []kafkaevents.Message{on(0, "A", "A:3"), on(1, "B", "B:3")})
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	for _, v := range []string{"A:2", "A:3", "B:2", "B:3"} {
		assert.False(t, f.has(v), "%s handled while its key is parked", v)
	}
	require.Len(t, second.Stack.ConcurrencyStats().Partitions, 1, "the second instance owns one of the partitions")
	require.Len(t, first.Stack.ConcurrencyStats().Partitions, 1, "the first instance kept the other")
	keys, err := second.Stack.ParkedKeys(t.Context(), 0)
	require.NoError(t, err)
	require.Len(t, keys, 2, "the second instance sees both keys parked")
	assert.Equal(t, 2, keys[0].SetAside+keys[1].SetAside-2, "the records sent after the rebalance are set aside")
	f.setFail("A:1", 0)
	f.setFail("B:1", 0)
	require.Eventually(t, func() bool { return f.has("A:3") && f.has("B:3") }, 60*time.Second, 20*time.Millisecond)
	f.assertInOrder(t)
}
