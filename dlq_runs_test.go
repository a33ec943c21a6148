package kafkaevents_test

import (
	"errors"
	"fmt"
	"sync"
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

// replicas are instances of one service on one broker, sharing its DLQ,
// with a handler that fails until fixed and counts its reprocessed
// deliveries by payload.
type replicas struct {
	env   *testEnv
	cfg   kafkaevents.Config
	topic string
	fixed atomic.Bool
	gate  atomic.Pointer[chan struct{}] // when set, reprocessed deliveries wait for it to close

	mu          sync.Mutex
	reprocessed map[string]int
}

func newReplicas(t *testing.T, name string) *replicas {
	rs := &replicas{env: newEnv(t), topic: uniq(name), reprocessed: map[string]int{}}
	rs.env.createTopics(t, 2, rs.topic)
	rs.cfg = rs.env.baseConfig(name)
	rs.cfg.Retry.Enabled = kafkaevents.Bool(false)
	return rs
}

// start starts one instance, as the name says in its runs.
func (rs *replicas) start(t *testing.T, instance string) *running {
	cfg := rs.cfg
	cfg.Consumer.InstanceID = instance
	return start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, rs.topic, "Runs.handle", func(msg *message.Message) error {
			if wire.DeliveryOf(msg).Source == wire.SourceReprocess {
				if g := rs.gate.Load(); g != nil {
					<-*g
				}
				rs.mu.Lock()
				rs.reprocessed[string(msg.Payload)]++
				rs.mu.Unlock()
			}
			if rs.fixed.Load() {
				return nil
			}
			return errors.New("not fixed yet")
		})
		require.NoError(t, err)
	})
}

// takeReprocessed returns the reprocessed deliveries counted so far, and
// starts counting again.
func (rs *replicas) takeReprocessed() map[string]int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	got := rs.reprocessed
	rs.reprocessed = map[string]int{}
	return got
}

// TestReprocessRunsAcrossInstances: two instances of one service. A run
// holds its topic on both: the other instance refuses a start with 409's
// error naming the holder, shows the run, and can stop it. Two starts at
// once on both give one run, which reprocesses each record once. A restarted
// instance shows the last run.
func TestReprocessRunsAcrossInstances(t *testing.T) {
	rs := newReplicas(t, "runs")
	a := rs.start(t, "pod-a")
	b := rs.start(t, "pod-b")
	dead := rs.env.collect(t, a.Stack.DLQTopic())
	const n = 30
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: rs.topic, Key: fmt.Sprint(i), Value: fmt.Sprintf("r-%d", i)}
	}
	_, err := a.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	dead.WaitFor(t, n, 60*time.Second, nil)
	rs.fixed.Store(true)

	// A run on a, held: b refuses to start one, and shows it.
	gate := make(chan struct{})
	rs.gate.Store(&gate)
	require.NoError(t, a.Stack.StartReprocess(dlq.ReprocessOptions{Topic: rs.topic, Timeout: time.Minute}))
	err = b.Stack.StartReprocess(dlq.ReprocessOptions{Topic: rs.topic})
	require.ErrorIs(t, err, dlq.ErrAlreadyRunning)
	var held *dlq.RunHeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "pod-a", held.Holder)
	st := b.Stack.ReprocessStatus()
	require.Len(t, st.Running, 1, "the other instance shows the run")
	assert.Equal(t, "pod-a", st.Running[0].Holder)
	assert.Equal(t, held.RunID, st.Running[0].RunID)
	assert.True(t, b.Stack.ReprocessActive())

	// Stopped from b: a's run ends, and both show it stopped.
	assert.Equal(t, 1, b.Stack.StopReprocess(rs.topic))
	close(gate)
	require.Eventually(t, func() bool { return !a.Stack.ReprocessActive() && !b.Stack.ReprocessActive() }, 30*time.Second, 20*time.Millisecond)
	for _, s := range []*kafkaevents.Stack{a.Stack, b.Stack} {
		last := s.ReprocessStatus().Last[rs.topic]
		assert.Equal(t, dlq.StateStopped, last.State, "%+v", last)
		assert.Equal(t, held.RunID, last.RunID)
	}
	first := rs.takeReprocessed()

	// Two starts at once, one on each: one run.
	gate = make(chan struct{})
	rs.gate.Store(&gate)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*kafkaevents.Stack{a.Stack, b.Stack} {
		wg.Go(func() { errs[i] = s.StartReprocess(dlq.ReprocessOptions{Topic: rs.topic, Timeout: time.Minute}) })
	}
	wg.Wait()
	started := 0
	for _, err := range errs {
		if err == nil {
			started++
		} else {
			require.ErrorIs(t, err, dlq.ErrAlreadyRunning)
		}
	}
	require.Equal(t, 1, started, "one of two simultaneous starts runs: %v", errs)
	close(gate)
	require.Eventually(t, func() bool { return !a.Stack.ReprocessActive() && !b.Stack.ReprocessActive() }, 60*time.Second, 20*time.Millisecond)
	second := rs.takeReprocessed()
	for payload, times := range second {
		assert.Equal(t, 1, times, "%s reprocessed %d times by one run", payload, times)
		first[payload]++
	}
	assert.Len(t, first, n, "every DLQ record reprocessed by one of the runs")
	last := a.Stack.ReprocessStatus().Last[rs.topic]
	require.Equal(t, dlq.StateCompleted, last.State, "%+v", last)
	assert.Equal(t, int64(len(second)), last.Reprocessed)
	assert.Equal(t, last, b.Stack.ReprocessStatus().Last[rs.topic], "both show the same run")

	// A restarted instance shows it too.
	b.Stop()
	c := rs.start(t, "pod-b")
	got := c.Stack.ReprocessStatus().Last[rs.topic]
	assert.Equal(t, last.RunID, got.RunID)
	assert.Equal(t, dlq.StateCompleted, got.State)
	assert.Equal(t, last.Reprocessed, got.Reprocessed)
}
