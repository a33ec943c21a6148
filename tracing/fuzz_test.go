package tracing_test

import (
	"context"
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// FuzzExtract feeds arbitrary trace headers to the middleware: it must never
// panic, must always call the handler and record one process span, whose
// parent is the remote span context exactly when the headers hold a valid one.
func FuzzExtract(f *testing.F) {
	f.Add(remoteTraceparent, remoteTracestate, remoteBaggage)
	f.Add("", "", "")
	f.Add("00-00000000000000000000000000000000-0000000000000000-00", "a=b,c=d", "k=v;prop=1")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "=,=", "%zz=%zz")

	prop := newPropagator()
	f.Fuzz(func(t *testing.T, traceparent, tracestate, bag string) {
		exp := tracetest.NewInMemoryExporter()
		// Sample every span, even under an unsampled parent, so that each
		// delivery is exported and can be checked.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		tr := tracing.New(tracing.Config{TracerProvider: tp, Propagator: prop})

		md := message.Metadata{"traceparent": traceparent, "tracestate": tracestate, "baggage": bag}
		before := maps.Clone(md)
		msg := message.NewMessage("u", nil)
		msg.Metadata = md
		msg.SetContext(wire.WithDelivery(context.Background(), testDelivery))

		calls := 0
		out, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
			calls++
			return []*message.Message{message.NewMessage("out", nil)}, nil
		})(msg)
		if err != nil || calls != 1 {
			t.Fatalf("handler calls = %d, err = %v", calls, err)
		}
		if !maps.Equal(before, msg.Metadata) {
			t.Fatal("the incoming metadata changed")
		}
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		want := trace.SpanContextFromContext(prop.Extract(context.Background(), tracing.MetadataCarrier(md)))
		got := spans[0].Parent
		if want.IsValid() != got.IsValid() || (want.IsValid() && (got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID())) {
			t.Fatalf("parent = %v, want %v", got, want)
		}
		if !spans[0].SpanContext.IsValid() {
			t.Fatal("invalid process span context")
		}
		// What was written into the output parses back to the process span.
		back := trace.SpanContextFromContext(tr.Extract(context.Background(), out[0].Metadata))
		if back.SpanID() != spans[0].SpanContext.SpanID() {
			t.Fatalf("output carries %v, want span %v", back, spans[0].SpanContext.SpanID())
		}
	})
}
