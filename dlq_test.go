package kafkaevents_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// assertDLQRecord checks every header of a DLQ record against the original.
func assertDLQRecord(t *testing.T, r record, topic, handlerID string, reason wire.Reason, retries int, errText string) {
	t.Helper()
	h := r.Headers
	assert.Equal(t, topic, h[wire.HeaderOriginalTopic])
	assert.Equal(t, handlerID, h[wire.HeaderHandlerID])
	assert.Equal(t, string(reason), h[wire.HeaderDLQReason])
	assert.Equal(t, strconv.Itoa(retries), h[wire.HeaderRetryCount])
	assert.Contains(t, h[wire.HeaderErrorMessage], errText)
	for _, k := range []string{wire.HeaderFailedAt, wire.HeaderDLQStoredAt} {
		_, err := time.Parse(time.RFC3339Nano, h[k])
		assert.NoError(t, err, k)
	}
	_, err := strconv.Atoi(h[wire.HeaderOriginalPartition])
	assert.NoError(t, err, "original partition")
	_, err = strconv.ParseInt(h[wire.HeaderOriginalOffset], 10, 64)
	assert.NoError(t, err, "original offset")
	assert.NotEmpty(t, h[wire.HeaderCorrelationID])
}

func TestDLQOnePerReason(t *testing.T) {
	env := newEnv(t)
	topic := uniq("reasons")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("reasons")
	cfg.Retry.Attempts = 1
	type order struct {
		Kind string `json:"kind"`
	}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Reasons.json", kafkaevents.JSON(func(ctx context.Context, o order) error {
			switch o.Kind {
			case "permanent":
				return wire.Permanent(errors.New("invalid order"))
			case "panic":
				panic("handler exploded")
			default:
				return errors.New("transient")
			}
		}))
		require.NoError(t, err)
	})
	c := env.collect(t, rn.Stack.DLQTopic())
	p := rn.Stack.Producer()
	send := func(key string, value any) {
		_, err := p.Send(t.Context(), kafkaevents.Message{Topic: topic, Key: key, Value: value,
			Headers: map[string]string{"x-custom": "kept-" + key}, CorrelationID: "corr-" + key})
		require.NoError(t, err)
	}
	send("perm", `{"kind":"permanent"}`)
	send("bad", `{not json`)
	send("exh", `{"kind":"transient"}`)
	send("pan", `{"kind":"panic"}`)

	recs := c.WaitFor(t, 4, 30*time.Second, nil)
	byKey := map[string]record{}
	for _, r := range recs {
		byKey[r.Key] = r
	}
	assertDLQRecord(t, byKey["perm"], topic, "Reasons.json", wire.ReasonPermanent, 0, "invalid order")
	assertDLQRecord(t, byKey["bad"], topic, "Reasons.json", wire.ReasonUndecodable, 0, "decode")
	assertDLQRecord(t, byKey["exh"], topic, "Reasons.json", wire.ReasonRetriesExhausted, 1, "transient")
	assertDLQRecord(t, byKey["pan"], topic, "Reasons.json", wire.ReasonRetriesExhausted, 1, "panic: handler exploded")
	for key, want := range map[string]string{"perm": `{"kind":"permanent"}`, "bad": `{not json`, "exh": `{"kind":"transient"}`} {
		r := byKey[key]
		assert.Equal(t, want, r.Value, "payload of %s unchanged", key)
		assert.Equal(t, "kept-"+key, r.Headers["x-custom"], "custom header of %s kept", key)
		assert.Equal(t, "corr-"+key, r.Headers[wire.HeaderCorrelationID])
	}
	// The DLQ counts a record once its send returned, which can be after a
	// consumer already read it.
	require.Eventually(t, func() bool { return rn.Stack.DLQStats().MessagesStored == 4 }, 5*time.Second, 10*time.Millisecond)
	st := rn.Stack.DLQStats()
	assert.Equal(t, int64(4), st.MessagesStored)
	assert.Equal(t, int64(1), st.ByReason[string(wire.ReasonPermanent)])
	assert.Equal(t, int64(1), st.ByReason[string(wire.ReasonUndecodable)])
	assert.Equal(t, int64(2), st.ByReason[string(wire.ReasonRetriesExhausted)])
}

func TestDLQWithRetryDisabledGlobally(t *testing.T) {
	env := newEnv(t)
	topic := uniq("dlqonly")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("dlqonly")
	cfg.Retry.Enabled = kafkaevents.Bool(false)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "DLQOnly.handle", func(*message.Message) error { return errors.New("nope") })
		require.NoError(t, err)
	})
	assert.Empty(t, rn.Stack.RetryTopics())
	c := env.collect(t, rn.Stack.DLQTopic())
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k", Value: "v"})
	require.NoError(t, err)
	r := c.WaitFor(t, 1, 30*time.Second, nil)[0]
	assertDLQRecord(t, r, topic, "DLQOnly.handle", wire.ReasonRetryDisabled, 0, "nope")
}

// poisonUnmarshaler rejects records carrying a "poison" header.
type poisonUnmarshaler struct{ kafka.DefaultMarshaler }

func (p poisonUnmarshaler) Unmarshal(m *sarama.ConsumerMessage) (*message.Message, error) {
	for _, h := range m.Headers {
		if string(h.Key) == "poison" {
			return nil, errors.New("poisoned record")
		}
	}
	return p.DefaultMarshaler.Unmarshal(m)
}

func TestUnmarshalFailureGoesToDLQAndConsumingGoesOn(t *testing.T) {
	env := newEnv(t)
	topic := uniq("poison")
	env.createTopics(t, 1, topic)
	var handled atomic.Int32
	rn := start(t, env.baseConfig("poison"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Poison.handle", func(*message.Message) error {
			handled.Add(1)
			return nil
		})
		require.NoError(t, err)
	}, kafkaevents.WithUnmarshaler(poisonUnmarshaler{}))
	c := env.collect(t, rn.Stack.DLQTopic())
	p := rn.Stack.Producer()
	_, err := p.Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "p", Value: "raw", Headers: map[string]string{"poison": "1"}})
	require.NoError(t, err)
	_, err = p.Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "ok", Value: "fine"})
	require.NoError(t, err)
	r := c.WaitFor(t, 1, 30*time.Second, nil)[0]
	assertDLQRecord(t, r, topic, "Poison.handle", wire.ReasonUndecodable, 0, "poisoned record")
	assert.Equal(t, "raw", r.Value)
	assert.Equal(t, "p", r.Key)
	assert.Empty(t, r.Headers[wire.HeaderUnmarshalError], "the internal marker is not published")
	require.Eventually(t, func() bool { return handled.Load() == 1 }, 30*time.Second, 10*time.Millisecond, "the consumer keeps consuming")
}

// reprocessFixture fills a DLQ with records of three topics, each with a
// handler that fails until fixed.
type reprocessFixture struct {
	env    *testEnv
	rn     *running
	topics [3]string
	fixed  atomic.Bool
	block  atomic.Pointer[chan struct{}] // when set, handlers wait for it to close
	mu     sync.Mutex
	seen   map[string][]wire.Delivery // payload -> deliveries
	dlq    *collector
}

func newReprocessFixture(t *testing.T, perTopic int) *reprocessFixture {
	f := &reprocessFixture{env: newEnv(t), seen: map[string][]wire.Delivery{}}
	for i := range f.topics {
		f.topics[i] = uniq(fmt.Sprintf("rp%d", i))
	}
	f.env.createTopics(t, 2, f.topics[:]...)
	cfg := f.env.baseConfig("reprocess")
	cfg.Retry.Enabled = kafkaevents.Bool(false)
	f.rn = start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		for i, topic := range f.topics {
			_, err := s.AddHandler(r, topic, fmt.Sprintf("RP.handle%d", i), func(msg *message.Message) error {
				f.mu.Lock()
				f.seen[string(msg.Payload)] = append(f.seen[string(msg.Payload)], wire.DeliveryOf(msg))
				f.mu.Unlock()
				if b := f.block.Load(); b != nil {
					<-*b
				}
				if f.fixed.Load() && string(msg.Payload) != "still-broken" {
					return nil
				}
				return errors.New("not fixed yet")
			})
			require.NoError(t, err)
		}
	})
	f.dlq = f.env.collect(t, f.rn.Stack.DLQTopic())
	var ms []kafkaevents.Message
	for i, topic := range f.topics {
		for j := range perTopic {
			ms = append(ms, kafkaevents.Message{Topic: topic, Key: strconv.Itoa(j), Value: fmt.Sprintf("t%d-m%d", i, j)})
		}
	}
	_, err := f.rn.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	f.dlq.WaitFor(t, len(ms), 60*time.Second, nil)
	return f
}

func (f *reprocessFixture) deliveries(payload string) []wire.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.Delivery(nil), f.seen[payload]...)
}

func TestReprocessTouchesOnlyItsTopicAndStopsAtCapturedEnd(t *testing.T) {
	f := newReprocessFixture(t, 5)
	s := f.rn.Stack
	// One of topic 0's messages keeps failing: it must come back to the DLQ
	// with x-reprocess-count 1 and not be reprocessed again in this run.
	_, err := s.Producer().Send(t.Context(), kafkaevents.Message{Topic: f.topics[0], Key: "sb", Value: "still-broken"})
	require.NoError(t, err)
	f.dlq.WaitFor(t, 16, 30*time.Second, nil)
	f.fixed.Store(true)

	p, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: f.topics[0], BatchSize: 2, Timeout: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, dlq.StateCompleted, p.State)
	assert.Equal(t, int64(5), p.Reprocessed)
	assert.Equal(t, int64(1), p.Failed)
	assert.Equal(t, int64(10), p.Skipped)
	assert.Zero(t, p.Remaining)

	for j := range 5 {
		ds := f.deliveries(fmt.Sprintf("t0-m%d", j))
		require.Len(t, ds, 2, "first delivery and one reprocess")
		assert.Equal(t, wire.SourceReprocess, ds[1].Source)
		assert.Equal(t, 1, ds[1].ReprocessCount)
		assert.Zero(t, ds[1].RetryCount)
		assert.Equal(t, "RP.handle0", ds[1].HandlerID)
		for i := 1; i < 3; i++ {
			assert.Len(t, f.deliveries(fmt.Sprintf("t%d-m%d", i, j)), 1, "other topics untouched")
		}
	}
	assert.Len(t, f.deliveries("still-broken"), 2, "reprocessed once, not again in the same run")
	back := f.dlq.WaitFor(t, 1, 30*time.Second, func(r record) bool {
		return r.Value == "still-broken" && r.Headers[wire.HeaderReprocessCount] == "1"
	})
	assert.Equal(t, string(wire.ReasonRetryDisabled), back[0].Headers[wire.HeaderDLQReason])

	// A second run starts after the first's committed offsets: only the
	// record that came back is new, and it fails again.
	p2, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: f.topics[0]})
	require.NoError(t, err)
	assert.Equal(t, int64(0), p2.Reprocessed)
	assert.Equal(t, int64(1), p2.Failed)
	assert.Zero(t, p2.Skipped)
	assert.Len(t, f.deliveries("still-broken"), 3)
	assert.Len(t, f.deliveries("t0-m0"), 2, "already reprocessed records are not dispatched again")
	f.dlq.WaitFor(t, 1, 30*time.Second, func(r record) bool {
		return r.Value == "still-broken" && r.Headers[wire.HeaderReprocessCount] == "2"
	})
	st := s.DLQStats()
	assert.Equal(t, int64(5), st.MessagesReprocessed)
	assert.Equal(t, int64(2), st.MessagesFailed)
}

func TestReprocessStopOnErrorAndConcurrentStart(t *testing.T) {
	f := newReprocessFixture(t, 3)
	s := f.rn.Stack
	// Not fixed: the first record of topic 1 fails again; with stopOnError the
	// run stops and leaves it for the next run.
	p, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: f.topics[1], StopOnError: true})
	require.Error(t, err)
	assert.Equal(t, dlq.StateStoppedOnError, p.State)
	assert.Equal(t, int64(1), p.Failed)
	time.Sleep(300 * time.Millisecond)
	assert.Len(t, f.dlq.Records(nil), 9, "a stop-on-error failure is not stored again")

	f.fixed.Store(true)
	p, err = s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: f.topics[1], StopOnError: true})
	require.NoError(t, err)
	assert.Equal(t, int64(3), p.Reprocessed, "the record left by the stopped run is reprocessed first")

	// Concurrent starts for one topic are refused; other topics may run. The
	// handler blocks until released so the run is surely in progress.
	release := make(chan struct{})
	f.block.Store(&release)
	require.NoError(t, s.StartReprocess(dlq.ReprocessOptions{Topic: f.topics[2], Timeout: 20 * time.Second}))
	require.ErrorIs(t, s.StartReprocess(dlq.ReprocessOptions{Topic: f.topics[2]}), dlq.ErrAlreadyRunning)
	require.NoError(t, s.StartReprocess(dlq.ReprocessOptions{Topic: f.topics[0], Timeout: 20 * time.Second}))
	status := s.ReprocessStatus()
	assert.GreaterOrEqual(t, len(status.Running), 1)
	close(release)
	require.Eventually(t, func() bool { return !s.ReprocessActive() }, 30*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, s.StartReprocess(dlq.ReprocessOptions{Topic: "no-such-topic"}), kafkaevents.ErrUnknownTopic)
	require.ErrorIs(t, s.StartReprocess(dlq.ReprocessOptions{Topic: f.topics[0], BatchSize: -1}), dlq.ErrInvalidOptions)
}

func TestBrowseDLQ(t *testing.T) {
	f := newReprocessFixture(t, 4)
	s := f.rn.Stack
	page, err := s.BrowseDLQ(t.Context(), f.topics[1], 3, 0)
	require.NoError(t, err)
	assert.Equal(t, 4, page.Total)
	require.Len(t, page.Records, 3)
	for _, r := range page.Records {
		assert.Equal(t, "RP.handle1", r.HandlerID)
		assert.Equal(t, string(wire.ReasonRetryDisabled), r.Reason)
		assert.Contains(t, r.Preview, "t1-m")
	}
	page2, err := s.BrowseDLQ(t.Context(), f.topics[1], 3, 3)
	require.NoError(t, err)
	require.Len(t, page2.Records, 1)
	// Browsing commits nothing: a reprocess run afterwards sees all four.
	f.fixed.Store(true)
	p, err := s.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: f.topics[1]})
	require.NoError(t, err)
	assert.Equal(t, int64(4), p.Reprocessed)
	_, err = s.BrowseDLQ(t.Context(), f.topics[1], 0, 0)
	require.ErrorIs(t, err, dlq.ErrInvalidBrowse)
}
