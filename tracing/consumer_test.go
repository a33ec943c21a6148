package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

func TestMiddleware_RemoteParent(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{ConsumerGroup: "billing"})
	md := message.Metadata{
		"traceparent":            remoteTraceparent,
		"tracestate":             remoteTracestate,
		"baggage":                remoteBaggage,
		wire.HeaderCorrelationID: "corr-abc",
	}
	before := maps.Clone(md)
	msg := deliveredMessage(t.Context(), md)

	var seen trace.SpanContext
	var tenant string
	_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		seen = trace.SpanContextFromContext(m.Context())
		tenant = baggage.FromContext(m.Context()).Member("tenant").Value()
		return nil, nil
	})(msg)
	require.NoError(t, err)

	s := onlySpan(t, exp)
	assert.Equal(t, "process orders", s.Name)
	assert.Equal(t, trace.SpanKindConsumer, s.SpanKind)
	assert.Equal(t, remoteTraceID, s.SpanContext.TraceID(), "same trace as the producer")
	assert.Equal(t, remoteTraceID, s.Parent.TraceID())
	assert.Equal(t, remoteSpanID, s.Parent.SpanID(), "the producer's span is the parent")
	assert.True(t, s.Parent.IsRemote())
	assert.Equal(t, remoteTracestate, s.SpanContext.TraceState().String())
	assert.Equal(t, codes.Unset, s.Status.Code)

	assert.Equal(t, s.SpanContext, seen, "the handler must see the process span")
	assert.Equal(t, "acme", tenant, "baggage must be extracted")
	assert.Equal(t, before, msg.Metadata, "the incoming metadata must not change")

	want := map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("kafka"),
		"messaging.destination.name":         attribute.StringValue("orders"),
		"messaging.operation.type":           attribute.StringValue("process"),
		"messaging.operation.name":           attribute.StringValue("process"),
		"messaging.consumer.group.name":      attribute.StringValue("billing"),
		"messaging.destination.partition.id": attribute.StringValue("3"),
		"messaging.kafka.offset":             attribute.Int64Value(42),
		"messaging.kafka.message.key":        attribute.StringValue("order-7"),
		"messaging.message.conversation_id":  attribute.StringValue("corr-abc"),
		"messaging.message.id":               attribute.StringValue("msg-uuid-1"),
		"kafkaevents.handler_id":             attribute.StringValue("orders-handler"),
		"kafkaevents.retry_count":            attribute.Int64Value(2),
		"kafkaevents.delivery.source":        attribute.StringValue("retry"),
	}
	assert.Equal(t, want, attrMap(s.Attributes))
}

func TestMiddleware_OptionalAttributes(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	msg := message.NewMessage("u-\xff", nil) // not UTF-8, like the key
	msg.SetContext(wire.WithDelivery(t.Context(), wire.Delivery{
		HandlerID: "h", Topic: "events", Key: []byte{0xff, 0xfe},
	}))

	_, err := tr.Middleware(okHandler)(msg)
	require.NoError(t, err)

	got := attrMap(onlySpan(t, exp).Attributes)
	for _, k := range []attribute.Key{
		"messaging.consumer.group.name",
		"messaging.destination.partition.id",
		"messaging.kafka.offset",
		"messaging.kafka.message.key",
		"messaging.message.conversation_id",
	} {
		assert.NotContains(t, got, k)
	}
	assert.Equal(t, "main", got["kafkaevents.delivery.source"].AsString())
	assert.Equal(t, "u-\uFFFD", got["messaging.message.id"].AsString(), "exporters need valid UTF-8")
	assert.Equal(t, int64(0), got["kafkaevents.retry_count"].AsInt64())
}

func TestMiddleware_CorrelationIDFromContext(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	// correlation.Middleware, outside the tracing middleware, puts the ID
	// in the context even when the record had none.
	msg := deliveredMessage(correlation.WithID(t.Context(), "corr-generated"), nil)
	_, err := tr.Middleware(okHandler)(msg)
	require.NoError(t, err)
	assert.Equal(t, "corr-generated", attrMap(onlySpan(t, exp).Attributes)["messaging.message.conversation_id"].AsString())
}

func TestMiddleware_NoTraceparentStartsNewTrace(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	msg := deliveredMessage(t.Context(), message.Metadata{"baggage": remoteBaggage})

	var tenant string
	_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		tenant = baggage.FromContext(m.Context()).Member("tenant").Value()
		return nil, nil
	})(msg)
	require.NoError(t, err)

	s := onlySpan(t, exp)
	assert.False(t, s.Parent.IsValid(), "a message without trace context starts a root span")
	assert.True(t, s.SpanContext.IsValid())
	assert.Equal(t, "acme", tenant)
}

func TestMiddleware_ContextParent(t *testing.T) {
	ctxParent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID("0af7651916cd43dd8448eb211c80319c"),
		SpanID:     mustSpanID("b7ad6b7169203331"),
		TraceFlags: trace.FlagsSampled,
	})
	tests := []struct {
		name       string
		md         message.Metadata
		wantParent trace.SpanID
	}{
		{name: "no traceparent keeps the context's span", md: message.Metadata{}, wantParent: ctxParent.SpanID()},
		{name: "corrupt traceparent keeps the context's span", md: message.Metadata{"traceparent": "garbage"}, wantParent: ctxParent.SpanID()},
		{name: "traceparent wins over the context's span", md: message.Metadata{"traceparent": remoteTraceparent}, wantParent: remoteSpanID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp, _ := newTracer(t, tracing.Config{})
			msg := deliveredMessage(trace.ContextWithSpanContext(t.Context(), ctxParent), tt.md)
			_, err := tr.Middleware(okHandler)(msg)
			require.NoError(t, err)
			assert.Equal(t, tt.wantParent, onlySpan(t, exp).Parent.SpanID())
		})
	}
}

func TestMiddleware_CorruptTraceparent(t *testing.T) {
	tests := []struct {
		name        string
		traceparent string
	}{
		{name: "garbage", traceparent: "not-a-traceparent"},
		{name: "wrong version", traceparent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{name: "all-zero trace id", traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{name: "all-zero span id", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{name: "upper-case hex", traceparent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
		{name: "truncated", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e47"},
		{name: "extra field on version 00", traceparent: remoteTraceparent + "-00"},
		{name: "oversized", traceparent: strings.Repeat("00-4bf92f3577b34da6", 10000)},
		{name: "invalid UTF-8", traceparent: "\xff\xfe\xfd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp, _ := newTracer(t, tracing.Config{})
			msg := deliveredMessage(t.Context(), message.Metadata{
				"traceparent": tt.traceparent,
				"tracestate":  strings.Repeat("x=", 600),
				"baggage":     "=;;,%%%",
			})
			called := false
			_, err := tr.Middleware(func(*message.Message) ([]*message.Message, error) {
				called = true
				return nil, nil
			})(msg)
			require.NoError(t, err)
			require.True(t, called, "the handler must still run")

			s := onlySpan(t, exp)
			assert.False(t, s.Parent.IsValid(), "a corrupt traceparent must start a new trace")
			assert.NotEqual(t, remoteTraceID, s.SpanContext.TraceID())
			assert.Equal(t, "process orders", s.Name)
		})
	}
}

func TestMiddleware_HandlerError(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	boom := errors.New("boom")
	_, err := tr.Middleware(func(*message.Message) ([]*message.Message, error) {
		return nil, boom
	})(deliveredMessage(t.Context(), nil))
	require.ErrorIs(t, err, boom, "the error must be returned unchanged")

	s := onlySpan(t, exp)
	assert.Equal(t, codes.Error, s.Status.Code)
	assert.Equal(t, "boom", s.Status.Description)
	assert.True(t, hasEvent(s, "exception"))
}

func TestMiddleware_HandlerPanic(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	h := tr.Middleware(func(*message.Message) ([]*message.Message, error) { panic("kaboom") })
	require.PanicsWithValue(t, "kaboom", func() { _, _ = h(deliveredMessage(t.Context(), nil)) })

	s := onlySpan(t, exp)
	assert.Equal(t, codes.Error, s.Status.Code)
	assert.Contains(t, s.Status.Description, "kaboom")
	assert.True(t, hasEvent(s, "exception"))
}

func TestMiddleware_InjectsIntoOutputs(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	in := deliveredMessage(t.Context(), message.Metadata{"traceparent": remoteTraceparent, "baggage": remoteBaggage})
	fresh := message.NewMessage("out-1", nil)
	fresh.Metadata = nil
	kept := message.NewMessage("out-2", nil)
	kept.Metadata.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

	out, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		return []*message.Message{fresh, kept, m, nil}, nil
	})(in)
	require.NoError(t, err)
	require.Len(t, out, 4)

	s := onlySpan(t, exp)
	got := tr.Extract(context.Background(), fresh.Metadata)
	sc := trace.SpanContextFromContext(got)
	assert.Equal(t, s.SpanContext.TraceID(), sc.TraceID(), "outputs continue the trace")
	assert.Equal(t, s.SpanContext.SpanID(), sc.SpanID(), "outputs are children of the process span")
	assert.Equal(t, "acme", baggage.FromContext(got).Member("tenant").Value())
	assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", kept.Metadata.Get("traceparent"))
	assert.Equal(t, remoteTraceparent, in.Metadata.Get("traceparent"), "the incoming message is not changed")
}

func TestMiddleware_NoopProviderStillPropagates(t *testing.T) {
	tr := tracing.New(tracing.Config{TracerProvider: noop.NewTracerProvider(), Propagator: newPropagator()})
	in := deliveredMessage(t.Context(), message.Metadata{"traceparent": remoteTraceparent, "baggage": remoteBaggage})
	fresh := message.NewMessage("out-1", nil)

	var seen trace.SpanContext
	var tenant string
	_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		seen = trace.SpanContextFromContext(m.Context())
		tenant = baggage.FromContext(m.Context()).Member("tenant").Value()
		return []*message.Message{fresh}, nil
	})(in)
	require.NoError(t, err)

	assert.Equal(t, remoteTraceID, seen.TraceID())
	assert.Equal(t, remoteSpanID, seen.SpanID())
	assert.Equal(t, "acme", tenant)
	assert.Equal(t, remoteTraceparent, fresh.Metadata.Get("traceparent"))
	assert.Equal(t, remoteBaggage, fresh.Metadata.Get("baggage"))
}

func TestMiddleware_UnsampledParent(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{}) // default sampler: parent-based
	unsampled := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	in := deliveredMessage(t.Context(), message.Metadata{"traceparent": unsampled})
	fresh := message.NewMessage("out-1", nil)

	var seen trace.SpanContext
	_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		seen = trace.SpanContextFromContext(m.Context())
		return []*message.Message{fresh}, nil
	})(in)
	require.NoError(t, err)

	assert.Empty(t, exp.GetSpans(), "the producer's sampling decision is honoured")
	assert.Equal(t, remoteTraceID, seen.TraceID(), "the trace still flows")
	assert.False(t, seen.IsSampled())
	out := trace.SpanContextFromContext(tr.Extract(context.Background(), fresh.Metadata))
	assert.Equal(t, remoteTraceID, out.TraceID())
	assert.False(t, out.IsSampled())
}

func TestMiddleware_ConcurrentTopics(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	h := tr.Middleware(okHandler)
	const workers, perWorker = 4, 300 // more topics than the span-name cache keeps
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				topic := fmt.Sprintf("topic-%d", (w*perWorker+i)%(workers*perWorker))
				msg := message.NewMessage("u", nil)
				msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{Topic: topic, HandlerID: topic}))
				if _, err := h(msg); err != nil {
					t.Error(err)
				}
				// The same topic again, now cached (or not, past the bound).
				if _, err := h(msg); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	spans := exp.GetSpans()
	require.Len(t, spans, 2*workers*perWorker)
	for _, s := range spans {
		attrs := attrMap(s.Attributes)
		topic := attrs["kafkaevents.handler_id"].AsString() // the delivery's topic, not from the cache
		require.True(t, strings.HasPrefix(topic, "topic-"))
		require.Equal(t, "process "+topic, s.Name)
		require.Equal(t, topic, attrs["messaging.destination.name"].AsString())
	}
}

func TestMiddleware_WithoutDelivery(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	_, err := tr.Middleware(okHandler)(message.NewMessage("u", nil))
	require.NoError(t, err)
	assert.Equal(t, "process", onlySpan(t, exp).Name)
}

// countingPropagator counts the Extract calls of the propagator it wraps.
type countingPropagator struct {
	propagation.TextMapPropagator
	extracts int
}

func (p *countingPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	p.extracts++
	return p.TextMapPropagator.Extract(ctx, c)
}

// TestMiddleware_ExtractsOnlyWhatIsCarried: with a propagator of its own the
// middleware extracts only from messages that carry one of its fields (here
// baggage alone still counts), and a message without them keeps its context.
func TestMiddleware_ExtractsOnlyWhatIsCarried(t *testing.T) {
	prop := &countingPropagator{TextMapPropagator: newPropagator()}
	tr := tracing.New(tracing.Config{TracerProvider: noop.NewTracerProvider(), Propagator: prop})
	var tenant string
	h := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		tenant = baggage.FromContext(m.Context()).Member("tenant").Value()
		return nil, nil
	})

	_, err := h(deliveredMessage(t.Context(), message.Metadata{"x-correlation-id": "corr-1"}))
	require.NoError(t, err)
	assert.Zero(t, prop.extracts, "nothing to extract from a message without trace headers")
	assert.Empty(t, tenant)

	_, err = h(deliveredMessage(t.Context(), message.Metadata{"baggage": remoteBaggage}))
	require.NoError(t, err)
	assert.Equal(t, 1, prop.extracts)
	assert.Equal(t, "acme", tenant, "baggage without a traceparent is extracted")
}
