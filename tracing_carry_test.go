package kafkaevents_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// The trace context of an incoming record, as a traced producer wrote it.
const (
	inTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	inTraceparent = "00-" + inTraceID + "-00f067aa0ba902b7-01"
	inTracestate  = "vendor=opaque"
	inBaggage     = "tenant=acme"
)

// TestTraceContextSurvivesRetriesAndDLQ sends a record carrying a trace
// context to a handler that publishes a record through the stack's producer
// and then fails: its retry records, its DLQ record and the records it
// published all carry the trace. Without an SDK (a no-op provider and a
// propagator that writes nothing, as when OTEL_* is unset) the incoming
// traceparent, tracestate and baggage are copied verbatim; with an SDK and
// the W3C propagators, they carry a span of this service in the same trace.
func TestTraceContextSurvivesRetriesAndDLQ(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) []kafkaevents.Option
		sdk  bool
	}{
		{"without an SDK", func(*testing.T) []kafkaevents.Option {
			return []kafkaevents.Option{
				kafkaevents.WithTracerProvider(noop.NewTracerProvider()),
				kafkaevents.WithPropagator(propagation.NewCompositeTextMapPropagator()),
			}
		}, false},
		{"with an SDK", func(t *testing.T) []kafkaevents.Option {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
			t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
			return []kafkaevents.Option{
				kafkaevents.WithTracerProvider(tp),
				kafkaevents.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
				h.AddHandler("traced.orders", "Traced.handle", func(msg *message.Message) error {
					if _, err := h.Stack.Producer().Send(msg.Context(), kafkaevents.Message{Topic: h.Topic("traced.out"), Key: "out", Value: "{}"}); err != nil {
						return err
					}
					return errors.New("handler failed")
				})
			}, kafkatest.Configure(func(cfg *kafkaevents.Config) { cfg.Retry.Attempts = 2 }),
				kafkatest.StackOptions(tc.opts(t)...))

			h.SendRecord(kafkatest.Record{Topic: "traced.orders", Key: "order-1", Value: "{}", Headers: map[string]string{
				wire.HeaderTraceparent: inTraceparent, wire.HeaderTracestate: inTracestate, "baggage": inBaggage,
			}})

			var records []kafkatest.Record
			records = append(records, h.WaitRetries("order-1", 2, 10*time.Second)...)
			records = append(records, h.WaitDLQ("traced.orders", 10*time.Second).Record)
			records = append(records, h.Read("traced.out", 3, 10*time.Second)...)
			for _, r := range records {
				tp := r.Headers[wire.HeaderTraceparent]
				if tc.sdk {
					require.True(t, strings.HasPrefix(tp, "00-"+inTraceID+"-"), "%s: traceparent %q is in the incoming trace", r.Topic, tp)
					assert.NotEqual(t, inTraceparent, tp, "%s: a span of this service is the parent", r.Topic)
				} else {
					assert.Equal(t, inTraceparent, tp, "%s: traceparent copied verbatim", r.Topic)
				}
				assert.Equal(t, inTracestate, r.Headers[wire.HeaderTracestate], r.Topic)
				assert.Equal(t, inBaggage, r.Headers["baggage"], r.Topic)
			}
		})
	}
}

// A DLQ record reprocessed without an SDK keeps the producer's trace: when it
// fails again, the DLQ record it leaves carries the incoming traceparent,
// tracestate and baggage verbatim.
func TestTraceContextSurvivesReprocessingWithoutAnSDK(t *testing.T) {
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("traced.refunds", "Refunds.handle", func(*message.Message) error {
			return errors.New("refund window closed")
		}, kafkaevents.WithoutRetry())
	}, kafkatest.StackOptions(
		kafkaevents.WithTracerProvider(noop.NewTracerProvider()),
		kafkaevents.WithPropagator(propagation.NewCompositeTextMapPropagator()),
	))
	h.SendRecord(kafkatest.Record{Topic: "traced.refunds", Key: "r-1", Value: "{}", Headers: map[string]string{
		wire.HeaderTraceparent: inTraceparent, wire.HeaderTracestate: inTracestate, "baggage": inBaggage,
	}})
	h.WaitDLQ("traced.refunds", 10*time.Second)

	require.NoError(t, h.Stack.StartReprocess(dlq.ReprocessOptions{Topic: h.Topic("traced.refunds")}))
	again := h.ReadDLQ("traced.refunds", 2, 10*time.Second)[1]
	assert.Equal(t, "1", again.Headers[wire.HeaderReprocessCount], "stored again by the reprocessed delivery")
	assert.Equal(t, inTraceparent, again.Headers[wire.HeaderTraceparent])
	assert.Equal(t, inTracestate, again.Headers[wire.HeaderTracestate])
	assert.Equal(t, inBaggage, again.Headers["baggage"])
}
