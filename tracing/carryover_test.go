package tracing_test

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents/tracing"
)

// A service without an SDK or a propagator keeps the trace of the records it
// handles: what it publishes while handling one (Producer sends, retry and
// DLQ records, messages the handler returns) carries the incoming
// traceparent, tracestate and baggage verbatim. A propagator that writes a
// traceparent wins, and an old tracestate never joins a new traceparent.
func TestMiddleware_CarriesTraceContextThePropagatorDoesNotWrite(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		prop                             propagation.TextMapPropagator
		traceparent, tracestate, baggage string
	}{
		{"no propagator", propagation.NewCompositeTextMapPropagator(), remoteTraceparent, remoteTracestate, remoteBaggage},
		{"baggage only", propagation.Baggage{}, remoteTraceparent, remoteTracestate, remoteBaggage},
		{"trace context only", propagation.TraceContext{}, remoteTraceparent, remoteTracestate, remoteBaggage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tracing.New(tracing.Config{TracerProvider: noop.NewTracerProvider(), Propagator: tc.prop})
			in := deliveredMessage(t.Context(), message.Metadata{
				"traceparent": remoteTraceparent, "tracestate": remoteTracestate, "baggage": remoteBaggage,
			})
			var rec *sarama.ProducerMessage
			out := message.NewMessage("out-1", nil)
			_, err := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
				rec = &sarama.ProducerMessage{Topic: "out"}
				_, end := tr.StartSend(msg.Context(), rec)
				end(0, 0, nil)
				return []*message.Message{out}, nil
			})(in)
			assert.NoError(t, err)
			hc := tracing.HeadersCarrier{Headers: &rec.Headers}
			assert.Equal(t, tc.traceparent, hc.Get("traceparent"))
			assert.Equal(t, tc.tracestate, hc.Get("tracestate"))
			assert.Equal(t, tc.baggage, hc.Get("baggage"))
			assert.Equal(t, tc.traceparent, out.Metadata.Get("traceparent"))
			assert.Equal(t, tc.tracestate, out.Metadata.Get("tracestate"))
			assert.Equal(t, tc.baggage, out.Metadata.Get("baggage"))
		})
	}

	t.Run("with an SDK", func(t *testing.T) {
		tr, _, _ := newTracer(t, tracing.Config{Propagator: propagation.TraceContext{}})
		in := deliveredMessage(t.Context(), message.Metadata{"traceparent": remoteTraceparent})
		var rec *sarama.ProducerMessage
		_, _ = tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			rec = &sarama.ProducerMessage{Topic: "out"}
			_, end := tr.StartSend(msg.Context(), rec)
			end(0, 0, nil)
			return nil, nil
		})(in)
		hc := tracing.HeadersCarrier{Headers: &rec.Headers}
		assert.Contains(t, hc.Get("traceparent"), remoteTraceID.String(), "same trace")
		assert.NotEqual(t, remoteTraceparent, hc.Get("traceparent"), "the send span is the parent")
		assert.Empty(t, hc.Get("tracestate"), "no tracestate came in, none goes out")
	})
}
