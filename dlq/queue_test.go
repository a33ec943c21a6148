package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/wire"
)

type fakeSender struct {
	recs []*sarama.ProducerMessage
	err  error
}

func (f *fakeSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	if f.err != nil {
		return f.err
	}
	f.recs = append(f.recs, rec)
	return nil
}

func hdr(rec *sarama.ProducerMessage) map[string]string {
	m := map[string]string{}
	for _, h := range rec.Headers {
		m[string(h.Key)] = string(h.Value)
	}
	return m
}

func msgFor(retryCount int) *message.Message {
	msg := message.NewMessage("uuid-9", []byte("body"))
	msg.Metadata.Set("x-custom", "kept")
	msg.Metadata.Set(wire.HeaderCorrelationID, "corr-9")
	msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "H", Topic: "orders", Partition: 1, Offset: 7, HasOffset: true, Key: []byte("k"), RetryCount: retryCount,
	}))
	return msg
}

func TestMiddlewareStoresWithReason(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		err  error
		want wire.Reason
	}{
		{"exhausted", wire.WithReason(wire.ReasonRetriesExhausted, errors.New("e")), wire.ReasonRetriesExhausted},
		{"permanent", fmt.Errorf("wrapped: %w", wire.Permanent(errors.New("p"))), wire.ReasonPermanent},
		{"undecodable", wire.Undecodable(errors.New("u")), wire.ReasonUndecodable},
		{"no reason means retries are off", errors.New("plain"), wire.ReasonRetryDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq", Now: func() time.Time { return now }}, nil)
			require.NoError(t, err)
			var got wire.Outcome
			msg := msgFor(3)
			d := wire.DeliveryOf(msg)
			d.Report = func(o wire.Outcome) { got = o }
			msg.SetContext(wire.WithDelivery(msg.Context(), d))
			_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, tt.err })(msg)
			require.NoError(t, err)
			require.Len(t, s.recs, 1)
			h := hdr(s.recs[0])
			assert.Equal(t, string(tt.want), h[wire.HeaderDLQReason])
			assert.Equal(t, "svc.dlq", s.recs[0].Topic)
			assert.Equal(t, "kept", h["x-custom"])
			assert.Equal(t, "orders", h[wire.HeaderOriginalTopic])
			assert.Equal(t, "1", h[wire.HeaderOriginalPartition])
			assert.Equal(t, "7", h[wire.HeaderOriginalOffset])
			assert.Equal(t, "3", h[wire.HeaderRetryCount])
			assert.Equal(t, "H", h[wire.HeaderHandlerID])
			assert.Equal(t, "corr-9", h[wire.HeaderCorrelationID])
			assert.Equal(t, "uuid-9", h[wire.HeaderWatermillUUID])
			assert.Equal(t, "2026-05-06T07:08:09.000Z", h[wire.HeaderDLQStoredAt])
			assert.Equal(t, wire.OutcomeDeadLettered, got.Kind)
			assert.Equal(t, tt.want, got.Reason)
			assert.Equal(t, int64(1), q.Metrics().Stats().ByReason[string(tt.want)])
		})
	}
}

// TestMiddlewareKeepsTheTraceHeaders: without a tracer the DLQ record
// carries the message's traceparent, tracestate and baggage unchanged, as it
// does any header the DLQ record does not set itself.
func TestMiddlewareKeepsTheTraceHeaders(t *testing.T) {
	s := &fakeSender{}
	q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	msg := msgFor(3)
	trace := map[string]string{
		wire.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		wire.HeaderTracestate:  "vendor=opaque",
		"baggage":              "tenant=acme",
	}
	for k, v := range trace {
		msg.Metadata.Set(k, v)
	}
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) {
		return nil, wire.WithReason(wire.ReasonRetriesExhausted, errors.New("e"))
	})(msg)
	require.NoError(t, err)
	require.Len(t, s.recs, 1)
	h := hdr(s.recs[0])
	for k, v := range trace {
		assert.Equal(t, v, h[k], k)
	}
	assert.Equal(t, "kept", h["x-custom"])
}

func TestMiddlewarePassesThroughWhatMustBeRedelivered(t *testing.T) {
	s := &fakeSender{}
	q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	handoff := fmt.Errorf("%w: retry record", wire.ErrHandoff)
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, handoff })(msgFor(0))
	require.ErrorIs(t, err, wire.ErrHandoff)

	msg := msgFor(0)
	msg.SetContext(wire.WithoutHandoff(msg.Context()))
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errors.New("x") })(msg)
	require.Error(t, err)
	assert.Empty(t, s.recs)

	s.err = errors.New("broker down")
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errors.New("x") })(msgFor(0))
	require.ErrorIs(t, err, wire.ErrHandoff, "a failed DLQ publish is returned so Watermill redelivers")

	out, err := q.Middleware(func(m *message.Message) ([]*message.Message, error) { return []*message.Message{m}, nil })(msgFor(0))
	require.NoError(t, err)
	assert.Len(t, out, 1)
}

const abandonedLine = "Stopping: handler returned after its context was cancelled; the record is left uncommitted and will be delivered again"

// TestMiddlewareLeavesAMessageWhoseContextWasCancelled: a handler that
// returns after a stop cancelled its message's context did not fail, it was
// abandoned: no DLQ record, no count, one INFO line, and the error returned
// unchanged, so the message is nacked and its record delivered again to the
// next owner.
func TestMiddlewareLeavesAMessageWhoseContextWasCancelled(t *testing.T) {
	exhausted := wire.WithReason(wire.ReasonRetriesExhausted, context.Canceled)
	tests := []struct {
		name string
		ret  func(*message.Message) error
		want error
	}{
		{"the handler returns ctx.Err()", func(m *message.Message) error { return m.Context().Err() }, context.Canceled},
		{"an error with a DLQ reason", func(*message.Message) error { return exhausted }, exhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			logs := watermill.NewCaptureLogger()
			q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, logs)
			require.NoError(t, err)
			msg := msgFor(1)
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

			_, err = q.Middleware(h)(msg)
			require.Error(t, err, "the message is nacked, not acknowledged")
			assert.Equal(t, tt.want, err, "the handler's error is returned unchanged")
			assert.Empty(t, s.recs, "no DLQ record")
			assert.False(t, reported, "no outcome: the delivery did not end")
			assert.Equal(t, int64(0), q.Metrics().Stats().MessagesStored)

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
			assert.Equal(t, int32(1), f["partition"])
			assert.Equal(t, int64(7), f["offset"])
			assert.Equal(t, tt.want.Error(), f["error"])
		})
	}
}

// TestMiddlewareStoresWhileTheContextIsLive: a context error of a context
// the handler made itself, while the message's is live, is a failure.
func TestMiddlewareStoresWhileTheContextIsLive(t *testing.T) {
	s := &fakeSender{}
	logs := watermill.NewCaptureLogger()
	q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, logs)
	require.NoError(t, err)
	_, err = q.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		ctx, cancel := context.WithTimeout(msg.Context(), time.Millisecond)
		defer cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})(msgFor(0))
	require.NoError(t, err, "the original is acknowledged once the DLQ record is")
	require.Len(t, s.recs, 1)
	h := hdr(s.recs[0])
	assert.Equal(t, string(wire.ReasonRetryDisabled), h[wire.HeaderDLQReason])
	assert.Equal(t, context.DeadlineExceeded.Error(), h[wire.HeaderErrorMessage])
	for _, l := range logs.Captured()[watermill.InfoLogLevel] {
		assert.NotEqual(t, abandonedLine, l.Msg)
	}
}

func TestStoreRejectsUnknownReason(t *testing.T) {
	q, err := dlq.New(dlq.Config{Sender: &fakeSender{}, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	require.Error(t, q.Store(context.Background(), dlq.Record{Reason: "bogus"}))
	_, err = dlq.New(dlq.Config{}, nil)
	require.Error(t, err)
}

func panicInHandler() { panic("boom") }

// TestMiddlewareStoresThePanicStack: a handler panic (recovered by
// middleware.RecoverPanics) is stored with the first lines of its stack in
// x-dlq-panic-stack, the panicking function first; another failure has no
// such header.
func TestMiddlewareStoresThePanicStack(t *testing.T) {
	s := &fakeSender{}
	q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	_, err = q.Middleware(middleware.RecoverPanics(func(*message.Message) ([]*message.Message, error) {
		panicInHandler()
		return nil, nil
	}))(msgFor(3))
	require.NoError(t, err)
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) {
		return nil, errors.New("plain")
	})(msgFor(4))
	require.NoError(t, err)
	require.Len(t, s.recs, 2)
	stack := hdr(s.recs[0])[wire.HeaderDLQPanicStack]
	require.NotEmpty(t, stack)
	assert.Contains(t, strings.SplitN(stack, "\n", 2)[0], "panicInHandler")
	assert.LessOrEqual(t, len(stack), wire.MaxErrorMessageLen)
	assert.NotContains(t, hdr(s.recs[1]), wire.HeaderDLQPanicStack)
}
