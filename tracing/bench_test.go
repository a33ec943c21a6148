package tracing_test

import (
	"context"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// benchProviders are the tracer providers the benchmarks run with: a no-op
// provider, the SDK exporting synchronously to an exporter that discards the
// spans, and the unset global provider (what New(Config{}) gets in an
// application that never configured OpenTelemetry).
func benchProviders(b *testing.B) []benchProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return []benchProvider{
		{name: "noop", tp: noop.NewTracerProvider()},
		{name: "sdk", tp: tp},
		{name: "global-unset", tp: nil},
	}
}

type benchProvider struct {
	name string
	tp   trace.TracerProvider
}

func BenchmarkMiddleware(b *testing.B) {
	headers := []struct {
		name string
		md   message.Metadata
	}{
		{name: "traceparent", md: message.Metadata{
			"traceparent":            remoteTraceparent,
			"baggage":                remoteBaggage,
			wire.HeaderCorrelationID: "corr-abc",
		}},
		{name: "traceparent-only", md: message.Metadata{"traceparent": remoteTraceparent}},
		{name: "no-headers", md: message.Metadata{}},
	}
	for _, p := range benchProviders(b) {
		for _, hd := range headers {
			b.Run(p.name+"/"+hd.name, func(b *testing.B) {
				tr := tracing.New(tracing.Config{
					TracerProvider: p.tp,
					Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
					ConsumerGroup:  "billing",
				})
				h := tr.Middleware(okHandler)
				msg := message.NewMessage("msg-uuid-1", []byte(`{"id":7}`))
				msg.Metadata = hd.md
				base := wire.WithDelivery(context.Background(), testDelivery)
				b.ReportAllocs()
				for b.Loop() {
					msg.SetContext(base)
					if _, err := h(msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPropagatorExtract is the reference for the middleware figures: the
// cost of the W3C trace context and baggage propagators alone on the headers
// of the "traceparent" case.
func BenchmarkPropagatorExtract(b *testing.B) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	md := message.Metadata{"traceparent": remoteTraceparent, "baggage": remoteBaggage, wire.HeaderCorrelationID: "corr-abc"}
	b.ReportAllocs()
	for b.Loop() {
		_ = prop.Extract(context.Background(), tracing.MetadataCarrier(md))
	}
}

func BenchmarkStartSend(b *testing.B) {
	for _, p := range benchProviders(b) {
		b.Run(p.name, func(b *testing.B) {
			tr := tracing.New(tracing.Config{
				TracerProvider: p.tp,
				Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
			})
			headers := []sarama.RecordHeader{hdr("x-correlation-id", "corr-abc"), hdr("traceparent", remoteTraceparent)}
			ctx := tr.Extract(context.Background(), message.Metadata{"traceparent": remoteTraceparent})
			b.ReportAllocs()
			for b.Loop() {
				rec := &sarama.ProducerMessage{Topic: "orders", Key: sarama.StringEncoder("k"), Headers: headers}
				_, end := tr.StartSend(ctx, rec)
				end(1, 2, nil)
			}
		})
	}
}
