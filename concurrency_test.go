package kafkaevents_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/internal/offsets"
)

// keyedBatch returns n records for topic with keys k0..k{keys-1} in turn;
// each value is "key:seq", seq counting that key's records from 0.
func keyedBatch(topic string, n, keys int) []kafkaevents.Message {
	seq := map[string]int{}
	out := make([]kafkaevents.Message, n)
	for i := range out {
		k := "k" + strconv.Itoa(i%keys)
		out[i] = kafkaevents.Message{Topic: topic, Key: k, Value: fmt.Sprintf("%s:%d", k, seq[k])}
		seq[k]++
	}
	return out
}

// orderCheck records, per key, the sequence numbers a handler sees, and how
// many records were in the handler at once.
type orderCheck struct {
	mu         sync.Mutex
	last       map[string]int
	seen       map[string]int // value -> deliveries
	violations []string
	running    atomic.Int32
	peak       atomic.Int32
}

func newOrderCheck() *orderCheck {
	return &orderCheck{last: map[string]int{}, seen: map[string]int{}}
}

// enter records msg's delivery, checks its key's order, and returns a func
// to call when the handler returns.
func (o *orderCheck) enter(msg *message.Message) func() {
	n := o.running.Add(1)
	for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
	}
	v := string(msg.Payload)
	k, s, _ := strings.Cut(v, ":")
	seq, _ := strconv.Atoi(s)
	o.mu.Lock()
	if last, ok := o.last[k]; ok && seq <= last && o.seen[v] == 0 {
		o.violations = append(o.violations, fmt.Sprintf("%s after %s:%d", v, k, last))
	}
	if last, ok := o.last[k]; !ok || seq > last {
		o.last[k] = seq
	}
	o.seen[v]++
	o.mu.Unlock()
	return func() { o.running.Add(-1) }
}

func (o *orderCheck) distinct() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

func (o *orderCheck) handledTwice() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.seen {
		if c > 1 {
			n += c - 1
		}
	}
	return n
}

// TestConcurrencyKeepsKeyOrder: 64 records of a partition in flight, 300
// keys; each key's records are handled one at a time, in offset order.
func TestConcurrencyKeepsKeyOrder(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-order")
	env.createTopics(t, 3, topic)
	check := newOrderCheck()
	rn := start(t, env.baseConfig("conc-order"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.concurrent", func(msg *message.Message) error {
			defer check.enter(msg)()
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return nil
		}, kafkaevents.WithConcurrency(64))
		require.NoError(t, err)
	})
	_, err := rn.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, 3000, 300))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return check.distinct() == 3000 }, 60*time.Second, 20*time.Millisecond)
	check.mu.Lock()
	assert.Empty(t, check.violations, "per-key order")
	check.mu.Unlock()
	assert.Greater(t, check.peak.Load(), int32(8), "records of a partition ran side by side")
	h := rn.Stack.Handlers()
	require.Len(t, h, 1)
	assert.Equal(t, 64, h[0].Options.Concurrency)
	assert.Equal(t, "key", h[0].Options.Ordering)
}

// TestConcurrencyCommitStaysBelowABlockedRecord: while one record is blocked
// in its handler, the records after it complete but the committed offset
// stays at it; the commit metadata lists it, and once it returns the offset
// moves past everything.
func TestConcurrencyCommitStaysBelowABlockedRecord(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-blocked")
	env.createTopics(t, 1, topic)
	release := make(chan struct{})
	var handled atomic.Int32
	cfg := env.baseConfig("conc-blocked")
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.blocked", func(msg *message.Message) error {
			if string(msg.Payload) == "slow" {
				<-release
			}
			handled.Add(1)
			return nil
		}, kafkaevents.WithConcurrency(16))
		require.NoError(t, err)
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	msgs := []kafkaevents.Message{}
	for i := range 5 {
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "a" + strconv.Itoa(i), Value: "fast"})
	}
	msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "slow", Value: "slow"})
	for i := range 200 {
		msgs = append(msgs, kafkaevents.Message{Topic: topic, Key: "b" + strconv.Itoa(i), Value: "fast"})
	}
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return handled.Load() == 205 }, 30*time.Second, 10*time.Millisecond)

	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	var block *sarama.OffsetFetchResponseBlock
	require.Eventually(t, func() bool {
		resp, err := admin.ListConsumerGroupOffsets(cfg.Consumer.GroupID, map[string][]int32{topic: {0}})
		if err != nil {
			return false
		}
		block = resp.GetBlock(topic, 0)
		if block == nil || block.Offset != 5 || block.Metadata == "" {
			return false
		}
		// A commit made while the last records finished names fewer:
		// wait for the one after them.
		w, ok := offsets.DecodeMetadata(block.Metadata, 5)
		return ok && w.Settled(205)
	}, 10*time.Second, 50*time.Millisecond, "committed offset stays at the blocked record, with metadata")
	w, ok := offsets.DecodeMetadata(block.Metadata, 5)
	require.True(t, ok, block.Metadata)
	assert.False(t, w.Settled(5), "the blocked record is unsettled")
	for off := int64(6); off < 206; off++ {
		require.True(t, w.Settled(off), "offset %d settled", off)
	}
	st := rn.Stack.ConcurrencyStats()
	require.Len(t, st.Partitions, 1)
	assert.Equal(t, int64(200), st.Partitions[0].SettledAbove)
	assert.Positive(t, st.Partitions[0].MetadataBytes)
	require.Len(t, st.Handlers, 1)
	assert.Equal(t, int64(1), st.Handlers[0].InFlight, "the blocked record is in flight")
	assert.Positive(t, st.Handlers[0].OldestInFlightMs)
	mfs, err := rn.Stack.Gatherer().Gather()
	require.NoError(t, err)
	gauges := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() != nil {
				gauges[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	assert.Equal(t, 1.0, gauges["kafkaevents_handler_in_flight"])
	assert.Equal(t, 200.0, gauges["kafkaevents_partition_settled_uncommitted"])
	assert.Positive(t, gauges["kafkaevents_partition_completed_map_bytes"])

	close(release)
	assert.Eventually(t, func() bool {
		return committedOffsetNow(admin, cfg.Consumer.GroupID, topic) == 206
	}, 10*time.Second, 50*time.Millisecond)
}

// TestConcurrencyCompletedRecordsAreNotHandledAgain: one record blocked,
// 5,000 after it completed, a commit interval passed, then the instance goes
// away without settling it: the next instance handles the blocked record
// again and skips the 5,000.
func TestConcurrencyCompletedRecordsAreNotHandledAgain(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-skip")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("conc-skip")
	cfg.Consumer.ShutdownTimeout = 200 * time.Millisecond
	block := make(chan struct{})
	defer close(block)
	var first atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.skip", func(msg *message.Message) error {
			if string(msg.Payload) == "slow" {
				<-block
			}
			first.Add(1)
			return nil
		}, kafkaevents.WithConcurrency(64))
		require.NoError(t, err)
	})
	msgs := []kafkaevents.Message{{Topic: topic, Key: "slow", Value: "slow"}}
	msgs = append(msgs, keyedBatch(topic, 5000, 300)...)
	_, err := rn.Stack.Producer().SendBatch(t.Context(), msgs)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return first.Load() == 5000 }, 60*time.Second, 10*time.Millisecond)
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.Eventually(t, func() bool {
		resp, err := admin.ListConsumerGroupOffsets(cfg.Consumer.GroupID, map[string][]int32{topic: {0}})
		if err != nil {
			return false
		}
		b := resp.GetBlock(topic, 0)
		if b == nil || b.Offset != 0 {
			return false
		}
		w, ok := offsets.DecodeMetadata(b.Metadata, 0)
		return ok && w.Settled(5000)
	}, 10*time.Second, 50*time.Millisecond, "the commit carries the completed offsets")
	rn.Stop()

	var again atomic.Int32
	var slowAgain atomic.Int32
	rn2 := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.skip", func(msg *message.Message) error {
			if string(msg.Payload) == "slow" {
				slowAgain.Add(1)
			}
			again.Add(1)
			return nil
		}, kafkaevents.WithConcurrency(64))
		require.NoError(t, err)
	})
	require.Eventually(t, func() bool { return slowAgain.Load() == 1 }, 30*time.Second, 10*time.Millisecond, "the blocked record is handled again")
	require.Eventually(t, func() bool {
		return committedOffsetNow(admin, cfg.Consumer.GroupID, topic) == 5001
	}, 10*time.Second, 50*time.Millisecond)
	assert.Less(t, again.Load(), int32(100), "handled again after the restart")
	assert.GreaterOrEqual(t, rn2.Stack.ConcurrencyStats().SkippedCompleted, int64(4900))
}

// TestConcurrencyIgnoresMetadataOfAnotherClient: a committed offset whose
// metadata another client wrote is used as it is, and nothing is skipped.
func TestConcurrencyIgnoresMetadataOfAnotherClient(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-foreign")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("conc-foreign")
	p, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	for i := range 20 {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(strconv.Itoa(i))})
		require.NoError(t, err)
	}
	require.NoError(t, p.Close())
	// Another client of the group committed offset 10 with metadata of its
	// own, one that even starts like ours.
	client := env.client(t)
	coord, err := client.Coordinator(cfg.Consumer.GroupID)
	require.NoError(t, err)
	req := &sarama.OffsetCommitRequest{
		Version: 2, ConsumerGroup: cfg.Consumer.GroupID, ConsumerGroupGeneration: sarama.GroupGenerationUndefined, RetentionTime: -1,
	}
	req.AddBlock(topic, 0, 10, 0, "kv1{\"owner\":\"someone else\"}")
	resp, err := coord.CommitOffset(req)
	require.NoError(t, err)
	require.Equal(t, sarama.ErrNoError, resp.Errors[topic][0])

	var got sync.Map
	var n atomic.Int32
	start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.foreign", func(msg *message.Message) error {
			got.Store(string(msg.Payload), true)
			n.Add(1)
			return nil
		}, kafkaevents.WithConcurrency(8))
		require.NoError(t, err)
	})
	require.Eventually(t, func() bool { return n.Load() == 10 }, 30*time.Second, 10*time.Millisecond)
	for i := 10; i < 20; i++ {
		_, ok := got.Load(strconv.Itoa(i))
		assert.True(t, ok, "record %d handled", i)
	}
}
