package tracing_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// W3C trace context of a remote producer.
const (
	remoteTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	remoteTracestate  = "vendor=opaque"
	remoteBaggage     = "tenant=acme"
)

var (
	remoteTraceID = mustTraceID("4bf92f3577b34da6a3ce929d0e0e4736")
	remoteSpanID  = mustSpanID("00f067aa0ba902b7")
)

func mustTraceID(s string) trace.TraceID {
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		panic(err)
	}
	return id
}

func mustSpanID(s string) trace.SpanID {
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		panic(err)
	}
	return id
}

func newPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// newTracer returns a Tracer on an SDK provider that exports synchronously to
// the returned in-memory exporter, and the provider for starting parent spans.
func newTracer(t testing.TB, cfg tracing.Config) (*tracing.Tracer, *tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg.TracerProvider = tp
	if cfg.Propagator == nil {
		cfg.Propagator = newPropagator()
	}
	return tracing.New(cfg), exp, tp
}

// testDelivery is the delivery that deliveredMessage describes.
var testDelivery = wire.Delivery{
	HandlerID:  "orders-handler",
	Topic:      "orders",
	Partition:  3,
	Offset:     42,
	HasOffset:  true,
	Key:        []byte("order-7"),
	RetryCount: 2,
	Source:     wire.SourceRetry,
}

// deliveredMessage returns a message with metadata md whose context
// describes testDelivery.
func deliveredMessage(ctx context.Context, md message.Metadata) *message.Message {
	msg := message.NewMessage("msg-uuid-1", []byte(`{"id":7}`))
	msg.Metadata = md
	msg.SetContext(wire.WithDelivery(ctx, testDelivery))
	return msg
}

func onlySpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	spans := exp.GetSpans()
	require.Len(t, spans, 1, "exactly one span must have ended")
	return spans[0]
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func hasEvent(s tracetest.SpanStub, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

func okHandler(*message.Message) ([]*message.Message, error) { return nil, nil }
