package delayedretry_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/wire"
)

type fakeSender struct {
	mu   sync.Mutex
	recs []*sarama.ProducerMessage
	err  error
}

func (f *fakeSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.recs = append(f.recs, rec)
	return nil
}

func headers(rec *sarama.ProducerMessage) map[string]string {
	m := map[string]string{}
	for _, h := range rec.Headers {
		m[string(h.Key)] = string(h.Value)
	}
	return m
}

func delivered(retryCount int) *message.Message {
	msg := message.NewMessage("uuid-1", []byte("payload"))
	msg.Metadata.Set("x-custom", "kept")
	msg.Metadata.Set(wire.HeaderRetryAfter, "stale")
	ctx := wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "H", Topic: "orders", Partition: 2, Offset: 41, HasOffset: true,
		Key: []byte("k"), RetryCount: retryCount, Source: wire.SourceMain,
	})
	msg.SetContext(correlation.WithID(ctx, "corr-1"))
	return msg
}

func newRetrier(t *testing.T, s *fakeSender, now time.Time) *delayedretry.Retrier {
	t.Helper()
	r, err := delayedretry.New(delayedretry.Config{
		Sender: s, TopicPrefix: "svc.retry",
		Policy: delayedretry.Policy{Attempts: 2, BaseDelay: 300 * time.Millisecond, MaxDelay: 5 * time.Second},
		Now:    func() time.Time { return now },
	}, nil)
	require.NoError(t, err)
	return r
}

func failing(err error) message.HandlerFunc {
	return func(*message.Message) ([]*message.Message, error) { return nil, err }
}

func TestRetrierSchedulesARetryRecord(t *testing.T) {
	s := &fakeSender{}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	r := newRetrier(t, s, now)
	out, err := r.Middleware(failing(errors.New("boom")))(delivered(0))
	require.NoError(t, err, "the original is acknowledged once the retry record is")
	assert.Nil(t, out)
	require.Len(t, s.recs, 1)
	rec := s.recs[0]
	assert.Equal(t, "svc.retry.300ms", rec.Topic)
	key, _ := rec.Key.Encode()
	val, _ := rec.Value.Encode()
	assert.Equal(t, "k", string(key))
	assert.Equal(t, "payload", string(val))
	h := headers(rec)
	assert.Equal(t, map[string]string{
		"x-custom":                   "kept",
		wire.HeaderWatermillUUID:     "uuid-1",
		wire.HeaderOriginalTopic:     "orders",
		wire.HeaderHandlerID:         "H",
		wire.HeaderRetryCount:        "1",
		wire.HeaderRetryAfter:        "2026-01-02T03:04:05.306Z",
		wire.HeaderFirstFailedAt:     "2026-01-02T03:04:05.006Z",
		wire.HeaderFailedAt:          "2026-01-02T03:04:05.006Z",
		wire.HeaderErrorMessage:      "boom",
		wire.HeaderOriginalPartition: "2",
		wire.HeaderOriginalOffset:    "41",
		wire.HeaderCorrelationID:     "corr-1",
	}, h)
	assert.Equal(t, []string{"svc.retry.300ms", "svc.retry.600ms"}, r.Topics())
}

// TestRetrierKeepsTheTraceHeaders: without a tracer the retry record carries
// the message's traceparent, tracestate and baggage unchanged, as it does
// any header the retry record does not set itself.
func TestRetrierKeepsTheTraceHeaders(t *testing.T) {
	s := &fakeSender{}
	r := newRetrier(t, s, time.Now())
	msg := delivered(0)
	trace := map[string]string{
		wire.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		wire.HeaderTracestate:  "vendor=opaque",
		"baggage":              "tenant=acme",
	}
	for k, v := range trace {
		msg.Metadata.Set(k, v)
	}
	_, err := r.Middleware(failing(errors.New("boom")))(msg)
	require.NoError(t, err)
	require.Len(t, s.recs, 1)
	h := headers(s.recs[0])
	for k, v := range trace {
		assert.Equal(t, v, h[k], k)
	}
	assert.Equal(t, "kept", h["x-custom"])
}

func TestRetrierGivesUpWithAReason(t *testing.T) {
	s := &fakeSender{}
	r := newRetrier(t, s, time.Now())
	_, err := r.Middleware(failing(errors.New("boom")))(delivered(2))
	reason, ok := wire.ReasonOf(err)
	require.True(t, ok)
	assert.Equal(t, wire.ReasonRetriesExhausted, reason)

	_, err = r.Middleware(failing(wire.Permanent(errors.New("bad"))))(delivered(0))
	reason, _ = wire.ReasonOf(err)
	assert.Equal(t, wire.ReasonPermanent, reason)

	require.NoError(t, r.SetPolicy("H", delayedretry.Policy{Disabled: true}))
	_, err = r.Middleware(failing(errors.New("boom")))(delivered(0))
	reason, _ = wire.ReasonOf(err)
	assert.Equal(t, wire.ReasonRetryDisabled, reason)
	assert.Empty(t, s.recs)

	st := r.Metrics().Stats().Handlers["H"]
	assert.Equal(t, int64(1), st.Exhausted)
	assert.Equal(t, int64(2), st.MessagesSkipped)
	assert.Equal(t, int64(3), st.ErrorsEncountered)
}

func TestRetrierReturnsHandoffErrorWhenPublishFails(t *testing.T) {
	s := &fakeSender{err: errors.New("broker down")}
	r := newRetrier(t, s, time.Now())
	_, err := r.Middleware(failing(errors.New("boom")))(delivered(0))
	require.ErrorIs(t, err, wire.ErrHandoff)
	_, hasReason := wire.ReasonOf(err)
	assert.False(t, hasReason, "a failed hand-off is redelivered, never dead-lettered")
}

func TestRetrierPerHandlerPolicyAndLanes(t *testing.T) {
	s := &fakeSender{}
	r := newRetrier(t, s, time.Now())
	require.NoError(t, r.SetPolicy("H", delayedretry.Policy{Attempts: 3, BaseDelay: time.Second, Backoff: delayedretry.BackoffLinear}))
	assert.Equal(t, []string{"svc.retry.300ms", "svc.retry.600ms", "svc.retry.1s", "svc.retry.2s", "svc.retry.3s"}, r.Topics())
	_, err := r.Middleware(failing(errors.New("boom")))(delivered(1))
	require.NoError(t, err)
	assert.Equal(t, "svc.retry.2s", s.recs[0].Topic)
	require.Error(t, r.SetPolicy("X", delayedretry.Policy{Attempts: -1}))
}

func TestRetrierJitteredRecordsUseTheLaneBelow(t *testing.T) {
	s := &fakeSender{}
	r, err := delayedretry.New(delayedretry.Config{
		Sender: s, TopicPrefix: "svc.retry",
		Policy: delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, Jitter: 0.9},
	}, nil)
	require.NoError(t, err)
	for range 20 {
		_, err := r.Middleware(failing(errors.New("boom")))(delivered(0))
		require.NoError(t, err)
	}
	for _, rec := range s.recs {
		assert.Equal(t, "svc.retry.1s", rec.Topic)
	}
}

func TestRetrierSingleMode(t *testing.T) {
	s := &fakeSender{}
	r, err := delayedretry.New(delayedretry.Config{Sender: s, TopicPrefix: "svc.retry", Mode: delayedretry.ModeSingle}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"svc.retry"}, r.Topics())
	_, err = r.Middleware(failing(errors.New("boom")))(delivered(0))
	require.NoError(t, err)
	assert.Equal(t, "svc.retry", s.recs[0].Topic)
}

const abandonedLine = "Stopping: handler returned after its context was cancelled; the record is left uncommitted and will be delivered again"

// TestRetrierLeavesAMessageWhoseContextWasCancelled: a handler that returns
// after a stop cancelled its message's context did not fail, it was
// abandoned: no retry record, no count, one INFO line, and the handler's
// error returned unchanged (without a DLQ reason), so the message is nacked
// and its record delivered again to the next owner.
func TestRetrierLeavesAMessageWhoseContextWasCancelled(t *testing.T) {
	own := errors.New("db: query interrupted")
	tests := []struct {
		name       string
		retryCount int
		ret        func(*message.Message) error
		want       error
	}{
		{"the handler returns ctx.Err()", 0, func(m *message.Message) error { return m.Context().Err() }, context.Canceled},
		{"the handler returns an error of its own", 0, func(*message.Message) error { return own }, own},
		{"retries exhausted", 2, func(m *message.Message) error { return m.Context().Err() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			logs := watermill.NewCaptureLogger()
			r, err := delayedretry.New(delayedretry.Config{
				Sender: s, TopicPrefix: "svc.retry",
				Policy: delayedretry.Policy{Attempts: 2, BaseDelay: 300 * time.Millisecond, MaxDelay: 5 * time.Second},
			}, logs)
			require.NoError(t, err)
			msg := delivered(tt.retryCount)
			reported := false
			d := wire.DeliveryOf(msg)
			d.Report = func(wire.Outcome) { reported = true }
			ctx, stop := context.WithCancel(wire.WithDelivery(msg.Context(), d))
			defer stop()
			msg.SetContext(ctx)
			// The stop cancels the message's context while the handler runs.
			h := func(m *message.Message) ([]*message.Message, error) {
				stop()
				return nil, tt.ret(m)
			}

			_, err = r.Middleware(h)(msg)
			require.Error(t, err, "the message is nacked, not acknowledged")
			assert.Equal(t, tt.want, err, "the handler's error is returned unchanged")
			_, hasReason := wire.ReasonOf(err)
			assert.False(t, hasReason, "an abandoned message carries no DLQ reason")
			assert.Empty(t, s.recs, "no retry record")
			assert.False(t, reported, "no outcome: the delivery did not end")
			assert.Equal(t, delayedretry.HandlerStats{}, r.Metrics().Stats().Handlers["H"], "nothing counted")

			var lines []watermill.CapturedMessage
			for _, l := range logs.Captured()[watermill.InfoLogLevel] {
				if l.Msg == abandonedLine {
					lines = append(lines, l)
				}
			}
			require.Len(t, lines, 1)
			f := lines[0].Fields
			assert.Equal(t, "H", f["handler_id"])
			assert.Equal(t, "orders", f["topic"])
			assert.Equal(t, int32(2), f["partition"])
			assert.Equal(t, int64(41), f["offset"])
			assert.Equal(t, tt.want.Error(), f["error"])
		})
	}
}

// TestRetrierRetriesWhileTheContextIsLive: an error while the message's
// context is live is a failure, even a context error of a context the
// handler made itself.
func TestRetrierRetriesWhileTheContextIsLive(t *testing.T) {
	tests := []struct {
		name string
		h    message.HandlerFunc
		want error
	}{
		{"a plain error", failing(errors.New("boom")), errors.New("boom")},
		{"the handler's own timeout", func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithTimeout(msg.Context(), time.Millisecond)
			defer cancel()
			<-ctx.Done()
			return nil, ctx.Err()
		}, context.DeadlineExceeded},
		{"the handler's own cancel", func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithCancel(msg.Context())
			cancel()
			return nil, ctx.Err()
		}, context.Canceled},
		{"a timeout middleware inside it, which cancels the context it set", func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithTimeout(msg.Context(), time.Minute)
			defer cancel()
			msg.SetContext(ctx)
			return nil, errors.New("boom")
		}, errors.New("boom")},
		{"a timeout middleware outside it that fired", nil, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			logs := watermill.NewCaptureLogger()
			r, err := delayedretry.New(delayedretry.Config{Sender: s, TopicPrefix: "svc.retry"}, logs)
			require.NoError(t, err)
			msg, h := delivered(0), tt.h
			if h == nil {
				ctx, cancel := context.WithTimeout(msg.Context(), time.Millisecond)
				defer cancel()
				<-ctx.Done()
				msg.SetContext(ctx)
				h = func(msg *message.Message) ([]*message.Message, error) { return nil, msg.Context().Err() }
			}
			_, err = r.Middleware(h)(msg)
			require.NoError(t, err, "the original is acknowledged once the retry record is")
			require.Len(t, s.recs, 1)
			assert.Equal(t, tt.want.Error(), headers(s.recs[0])[wire.HeaderErrorMessage])
			st := r.Metrics().Stats().Handlers["H"]
			assert.Equal(t, int64(1), st.Scheduled)
			assert.Equal(t, int64(1), st.ErrorsEncountered)
			for _, l := range logs.Captured()[watermill.InfoLogLevel] {
				assert.NotEqual(t, abandonedLine, l.Msg)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	_, err := delayedretry.New(delayedretry.Config{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Sender")
	assert.Contains(t, err.Error(), "TopicPrefix")
	_, err = delayedretry.New(delayedretry.Config{Sender: &fakeSender{}, TopicPrefix: "p", Mode: "zigzag"}, nil)
	assert.ErrorContains(t, err, "zigzag")
}

func TestShortestDelay(t *testing.T) {
	r, err := delayedretry.New(delayedretry.Config{
		Sender: &fakeSender{}, TopicPrefix: "svc.retry",
		Policy: delayedretry.Policy{Attempts: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Second},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ShortestDelay(); got != time.Second {
		t.Fatalf("default policy only: ShortestDelay = %s, want 1s", got)
	}
	if err := r.SetPolicy("fast", delayedretry.Policy{Attempts: 2, BaseDelay: 300 * time.Millisecond, MaxDelay: time.Second, Backoff: delayedretry.BackoffLinear}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetPolicy("off", delayedretry.Policy{Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if got := r.ShortestDelay(); got != 300*time.Millisecond {
		t.Fatalf("with a faster handler policy: ShortestDelay = %s, want 300ms", got)
	}
}

// discardSender acknowledges every record at once.
type discardSender struct{}

func (discardSender) SendRecord(context.Context, *sarama.ProducerMessage) error { return nil }

// BenchmarkRetryHandoff is the retry middleware's failure path: the retry
// record built and handed to a sender that acknowledges at once.
func BenchmarkRetryHandoff(b *testing.B) {
	r, err := delayedretry.New(delayedretry.Config{
		Sender: discardSender{}, TopicPrefix: "svc.retry",
		Policy: delayedretry.Policy{Attempts: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Second},
	}, nil)
	require.NoError(b, err)
	h := r.Middleware(failing(errors.New("boom")))
	msg := delivered(0)
	for range 8 {
		msg.Metadata.Set("x-header-"+string(rune('a'+len(msg.Metadata))), "some value of a header")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func panicInHandler() { panic("boom") }

// TestRetryLineCarriesThePanicStack: a handler panic (recovered by
// middleware.RecoverPanics) is retried, and its "Retry scheduled" line
// carries the first lines of the stack, the panicking function first.
func TestRetryLineCarriesThePanicStack(t *testing.T) {
	s := &fakeSender{}
	logs := watermill.NewCaptureLogger()
	r, err := delayedretry.New(delayedretry.Config{Sender: s, TopicPrefix: "svc.retry"}, logs)
	require.NoError(t, err)
	h := middleware.RecoverPanics(func(*message.Message) ([]*message.Message, error) {
		panicInHandler()
		return nil, nil
	})
	_, err = r.Middleware(h)(delivered(0))
	require.NoError(t, err)
	require.Len(t, s.recs, 1)
	var stack string
	for _, l := range logs.Captured()[watermill.InfoLogLevel] {
		if l.Msg == "Retry scheduled" {
			stack, _ = l.Fields["panic_stack"].(string)
		}
	}
	require.NotEmpty(t, stack, "the line carries the stack")
	assert.Contains(t, strings.SplitN(stack, "\n", 2)[0], "panicInHandler")
	assert.LessOrEqual(t, strings.Count(stack, "\n")+1, wire.PanicStackLines)
}
