package kafkaevents_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/internal/offsets"
)

// sessionLog counts what a stack logs when a consumer group session is torn
// down: sarama's rebalance timeout passing on a revoked claim, and
// watermill-kafka running Consume again after a session ended.
type sessionLog struct {
	mu       sync.Mutex
	timedOut int
	restarts int
	ignored  []watermill.LogFields // "Commit metadata ignored" lines
}

func (l *sessionLog) Error(msg string, err error, fields watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && (errors.Is(err, sarama.ErrRebalanceTimedOut) || strings.Contains(err.Error(), "did not exit within")) {
		l.timedOut++
	}
	if strings.HasPrefix(msg, "Commit metadata ignored") {
		l.ignored = append(l.ignored, fields)
	}
}
func (l *sessionLog) Info(string, watermill.LogFields) {}
func (l *sessionLog) Debug(msg string, _ watermill.LogFields) {
	if strings.HasPrefix(msg, "Consume stopped without any error") {
		l.mu.Lock()
		l.restarts++
		l.mu.Unlock()
	}
}
func (l *sessionLog) Trace(string, watermill.LogFields)                {}
func (l *sessionLog) With(watermill.LogFields) watermill.LoggerAdapter { return l }

func (l *sessionLog) counts() (timedOut, restarts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.timedOut, l.restarts
}

// TestCooperativeStickyHandsOverPromptly: with the cooperative-sticky
// assignor, a second member gets its partitions within two heartbeats and
// the time of the records in flight, and the first member's session goes on
// (no rebalance timeout, no new session), for a sequential and a concurrent
// handler. Every record is handled.
func TestCooperativeStickyHandsOverPromptly(t *testing.T) {
	for _, conc := range []int{1, 16} {
		name := "sequential"
		if conc > 1 {
			name = "concurrent"
		}
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("coop-" + name)
			env.createTopics(t, 4, topic)
			cfg := env.baseConfig("coop-" + name)
			cfg.Consumer.RebalanceStrategy = "cooperative-sticky"
			cfg.Consumer.RebalanceTimeout = 30 * time.Second
			cfg.Consumer.ShutdownTimeout = 10 * time.Second
			cfg.Consumer.HeartbeatInterval = time.Second // a member learns of a rebalance within 1 s
			check := newOrderCheck()
			var onA, onB atomic.Int64
			handler := func(n *atomic.Int64) func(*message.Message) error {
				return func(msg *message.Message) error {
					defer check.enter(msg)()
					n.Add(1)
					// About 200 records a second over 4 partitions
					// either way: the first member is far from done when
					// the second joins.
					time.Sleep(time.Duration(conc) * 20 * time.Millisecond)
					return nil
				}
			}
			logA := &sessionLog{}
			a := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.coop", handler(&onA), kafkaevents.WithConcurrency(conc))
				require.NoError(t, err)
			}, kafkaevents.WithLogger(logA))
			_, err := a.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, 3000, 300))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return onA.Load() > 50 }, 30*time.Second, 5*time.Millisecond)

			joined := time.Now()
			start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.coop", handler(&onB), kafkaevents.WithConcurrency(conc))
				require.NoError(t, err)
			})
			require.Eventually(t, func() bool { return onB.Load() > 0 }, 60*time.Second, 5*time.Millisecond,
				"the second member handles records of the partitions handed over")
			handover := time.Since(joined)
			t.Logf("%s: the second member handled its first record %s after it started", name, handover.Round(time.Millisecond))
			// Two rounds of joins, each learnt of within a heartbeat, and
			// the records in flight returning: about 2 s. A revocation
			// seen late (when sarama closes the partition) took 7 to 12 s.
			assert.Less(t, handover, 5*time.Second, "handed over within two heartbeats and the records in flight")
			timedOut, restarts := logA.counts()
			assert.Zero(t, timedOut, "no revoked claim outlived the rebalance timeout")
			assert.Zero(t, restarts, "the first member's session went on: no new session")
			require.Eventually(t, func() bool { return check.distinct() == 3000 }, 120*time.Second, 20*time.Millisecond, "every record handled")
			assert.Empty(t, check.violations, "per-key order on first deliveries")
		})
	}
}

// keyOverlap records, per key, how many records run at once.
type keyOverlap struct {
	mu      sync.Mutex
	running map[string]int
	overlap []string
}

func (k *keyOverlap) enter(msg *message.Message) func() {
	v := string(msg.Payload)
	key, _, _ := strings.Cut(v, ":")
	k.mu.Lock()
	k.running[key]++
	if k.running[key] > 1 {
		k.overlap = append(k.overlap, v)
	}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		k.running[key]--
		k.mu.Unlock()
	}
}

func (k *keyOverlap) overlaps() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.overlap...)
}

// TestReclaimKeepsAKeyBusy: a rebalance gives a partition back to the same
// member while a record of it still runs past the release wait. The new
// claim receives that record again (its offset was not committed): it waits
// until the first run returns, and so does the next record of its key. No
// two records of one key run at once.
func TestReclaimKeepsAKeyBusy(t *testing.T) {
	env := newEnv(t)
	topic := uniq("reclaim")
	other := uniq("reclaim-other")
	env.createTopics(t, 1, topic, other)
	cfg := env.baseConfig("reclaim")
	cfg.Consumer.ShutdownTimeout = time.Second // the release wait
	overlap := &keyOverlap{running: map[string]int{}}
	release := make(chan struct{})
	var slowRuns, done atomic.Int32
	handler := func(msg *message.Message) error {
		defer overlap.enter(msg)()
		if string(msg.Payload) == "k0:0" && slowRuns.Add(1) == 1 {
			<-release
		}
		done.Add(1)
		return nil
	}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.reclaim", handler, kafkaevents.WithConcurrency(8))
		require.NoError(t, err)
	})
	// k0:0, 30 records of other keys, then k0:1, which waits behind k0:0.
	batch := []kafkaevents.Message{{Topic: topic, Key: "k0", Value: "k0:0"}}
	for _, m := range keyedBatch(topic, 30, 3) {
		m.Key = "o" + m.Key
		m.Value = "o" + m.Value.(string)
		batch = append(batch, m)
	}
	batch = append(batch, kafkaevents.Message{Topic: topic, Key: "k0", Value: "k0:1"})
	_, err := rn.Stack.Producer().SendBatch(t.Context(), batch)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slowRuns.Load() == 1 && done.Load() == 30 }, 30*time.Second, 5*time.Millisecond,
		"k0:0 blocks; the other keys' records are handled")

	// A member of the same group on another topic: the range assignor gives
	// the partition of topic back to the same member after an eager
	// rebalance.
	group, err := sarama.NewConsumerGroup(env.Brokers, cfg.Consumer.GroupID, env.saramaConfig())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		_ = group.Consume(ctx, []string{other}, nopGroupHandler{})
	}()
	t.Cleanup(func() { cancel(); <-joined; _ = group.Close() })
	env.waitMembers(t, cfg.Consumer.GroupID, 2, 60*time.Second)
	// The old claim gives up k0:0 after the 1 s release wait and the new
	// claim receives it again: two records in flight, or a second run.
	inFlight := func() int64 {
		for _, h := range rn.Stack.ConcurrencyStats().Handlers {
			if h.ID == "Orders.reclaim" {
				return h.InFlight
			}
		}
		return 0
	}
	require.Eventually(t, func() bool { return inFlight() >= 2 || slowRuns.Load() >= 2 }, 30*time.Second, 5*time.Millisecond,
		"the new claim received k0:0 again")
	assert.Equal(t, int32(1), slowRuns.Load(), "k0:0 handed out again by the new claim waits for the first run")
	close(release)
	require.Eventually(t, func() bool { return slowRuns.Load() == 2 }, 30*time.Second, 5*time.Millisecond,
		"the new claim runs k0:0 again once the first run returned")
	waitSettled(t, rn.Stack, topic, 30*time.Second)
	assert.Empty(t, overlap.overlaps(), "no two records of one key at once")
}

type nopGroupHandler struct{}

func (nopGroupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (nopGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (nopGroupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case _, ok := <-c.Messages():
			if !ok {
				return nil
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// TestStopCancelsStuckHandlers: a stop with a handler that does not return
// waits ShutdownTimeout, then cancels the handler's context (concurrent
// handlers included) and returns within ShutdownTimeout + 1 s. The handler
// returning ctx.Err() then is not a failure: no retry record; the record is
// uncommitted and handled again after the restart.
func TestStopCancelsStuckHandlers(t *testing.T) {
	for _, conc := range []int{1, 16} {
		name := "sequential"
		if conc > 1 {
			name = "concurrent"
		}
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("stuck-" + name)
			env.createTopics(t, 1, topic)
			cfg := env.baseConfig("stuck-" + name)
			cfg.Consumer.ShutdownTimeout = 2 * time.Second
			var entered, cancelled atomic.Int32
			var first atomic.Bool
			stuck := func(msg *message.Message) error {
				if !first.CompareAndSwap(false, true) {
					return nil // after the restart
				}
				entered.Add(1)
				select {
				case <-msg.Context().Done():
					cancelled.Add(1)
					return msg.Context().Err()
				case <-time.After(40 * time.Second):
					return nil
				}
			}
			var handled atomic.Int32
			rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.stuck", func(msg *message.Message) error {
					if err := stuck(msg); err != nil {
						return err
					}
					handled.Add(1)
					return nil
				}, kafkaevents.WithConcurrency(conc))
				require.NoError(t, err)
			})
			_, err := rn.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, 1, 1))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return entered.Load() == 1 }, 30*time.Second, 5*time.Millisecond)
			lanes := rn.Stack.RetryTopics()

			began := time.Now()
			rn.Stop()
			took := time.Since(began)
			t.Logf("%s: the stop took %s", name, took.Round(time.Millisecond))
			assert.Less(t, took, cfg.Consumer.ShutdownTimeout+time.Second, "the stop waits ShutdownTimeout once")
			assert.Equal(t, int32(1), cancelled.Load(), "the stuck handler's context was cancelled by the stop")

			admin := newAdmin(t, env)
			for _, lane := range lanes {
				assert.Zero(t, endOffsets(t, env, lane), "no retry record for a record the stop gave up (%s)", lane)
			}
			assert.LessOrEqual(t, committedOffset(t, admin, cfg.Consumer.GroupID, topic), int64(0), "the record (offset 0) stays uncommitted")

			rn2 := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.stuck", func(msg *message.Message) error {
					handled.Add(1)
					return nil
				}, kafkaevents.WithConcurrency(conc))
				require.NoError(t, err)
			})
			require.Eventually(t, func() bool { return handled.Load() == 1 }, 30*time.Second, 5*time.Millisecond,
				"handled after the restart")
			waitSettled(t, rn2.Stack, topic, 30*time.Second)
		})
	}
}

// TestForgedMetadataSkipsNothing: a commit whose metadata claims, in this
// library's format, that a window of a million offsets was settled (a tool
// or another client wrote it) is not trusted: it names offsets past the
// partition's end. One line says so, naming the group, topic and
// partition; every record is handled.
func TestForgedMetadataSkipsNothing(t *testing.T) {
	env := newEnv(t)
	topic := uniq("forged")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("forged")
	p, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	for i := range 200 {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strings.Repeat("x", i%7+1))})
		require.NoError(t, err)
	}
	forged := offsets.EncodeMetadata(0, 1_000_000, []int64{0})
	require.LessOrEqual(t, len(forged), 14, "a short string")
	admin := newAdmin(t, env)
	resp, err := admin.AlterConsumerGroupOffsets(cfg.Consumer.GroupID, map[string]map[int32]sarama.OffsetAndMetadata{
		topic: {0: {Offset: 0, Metadata: forged, LeaderEpoch: -1}},
	}, nil)
	require.NoError(t, err)
	for _, parts := range resp.Errors {
		for _, kerr := range parts {
			require.Equal(t, sarama.ErrNoError, kerr)
		}
	}

	var handled atomic.Int32
	log := &sessionLog{}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Orders.forged", func(*message.Message) error {
			handled.Add(1)
			return nil
		}, kafkaevents.WithConcurrency(8))
		require.NoError(t, err)
	}, kafkaevents.WithLogger(log))
	require.Eventually(t, func() bool { return handled.Load() == 200 }, 30*time.Second, 5*time.Millisecond,
		"every record handled: none skipped on the word of forged metadata")
	waitSettled(t, rn.Stack, topic, 30*time.Second)
	assert.Equal(t, int32(200), handled.Load())
	log.mu.Lock()
	defer log.mu.Unlock()
	require.Len(t, log.ignored, 1, "one line says the metadata was ignored")
	assert.Equal(t, cfg.Consumer.GroupID, log.ignored[0]["consumer_group"])
	assert.Equal(t, topic, log.ignored[0]["topic"])
	assert.Equal(t, int32(0), log.ignored[0]["partition"])
}

func newAdmin(t *testing.T, env *testEnv) sarama.ClusterAdmin {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	return admin
}

// endOffsets returns the sum of the end offsets of topic's partitions.
func endOffsets(t *testing.T, env *testEnv, topic string) int64 {
	t.Helper()
	c := env.client(t)
	parts, err := c.Partitions(topic)
	require.NoError(t, err)
	var n int64
	for _, p := range parts {
		end, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		n += end
	}
	return n
}
