package kafkaevents_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// TestTraceHeadersReachRetryAndDLQRecords sends a record carrying a
// traceparent, a tracestate, a baggage and a custom header to a handler that
// always fails, lets it go through its retry lane into the DLQ, reprocesses
// it and lets it fail again. Whatever the tracing option, the retry and DLQ
// records and the retried and reprocessed deliveries keep the custom header
// and the trace headers: unchanged when the stack writes no span of its own
// (WithoutTracing, even next to an SDK; a no-op provider; the unset
// globals), and, with an SDK, replaced by the context of a send span of this
// service in the upstream trace.
func TestTraceHeadersReachRetryAndDLQRecords(t *testing.T) {
	w3c := func() propagation.TextMapPropagator {
		return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	for _, tc := range []struct {
		name string
		// opts returns the stack options and, when spans are recorded, the
		// exporter that receives them.
		opts func(t *testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter)
	}{
		{"WithoutTracing", func(*testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter) {
			return []kafkaevents.Option{kafkaevents.WithoutTracing()}, nil
		}},
		{"WithoutTracing next to an SDK", func(t *testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
			t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
			return []kafkaevents.Option{
				kafkaevents.WithTracerProvider(tp), kafkaevents.WithPropagator(w3c()), kafkaevents.WithoutTracing(),
			}, nil
		}},
		{"no-op provider and the W3C propagators", func(*testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter) {
			return []kafkaevents.Option{
				kafkaevents.WithTracerProvider(noop.NewTracerProvider()), kafkaevents.WithPropagator(w3c()),
			}, nil
		}},
		{"the OpenTelemetry globals, unset", func(*testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter) {
			return nil, nil
		}},
		{"an SDK and the W3C propagators", func(t *testing.T) ([]kafkaevents.Option, *tracetest.InMemoryExporter) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
			return []kafkaevents.Option{kafkaevents.WithTracerProvider(tp), kafkaevents.WithPropagator(w3c())}, exp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("trace-headers")
			env.createTopics(t, 1, topic)
			cfg := env.baseConfig("trace-headers")
			cfg.Retry.Attempts = 1
			opts, exp := tc.opts(t)

			type delivery struct {
				source wire.Source
				md     message.Metadata
			}
			deliveries := make(chan delivery, 8)
			rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "TraceHeaders.handle", func(msg *message.Message) error {
					deliveries <- delivery{wire.DeliveryOf(msg).Source, maps.Clone(msg.Metadata)}
					return errors.New("handler failed")
				})
				require.NoError(t, err)
			}, opts...)
			retryTopics := rn.Stack.RetryTopics()
			c := env.collect(t, append(retryTopics, rn.Stack.DLQTopic())...)
			onRetry := func(r record) bool { return slices.Contains(retryTopics, r.Topic) }

			raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			_, _, err = raw.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("order-1"), Value: sarama.StringEncoder("{}"), Headers: []sarama.RecordHeader{
				{Key: []byte(wire.HeaderTraceparent), Value: []byte(inTraceparent)},
				{Key: []byte(wire.HeaderTracestate), Value: []byte(inTracestate)},
				{Key: []byte("baggage"), Value: []byte(inBaggage)},
				{Key: []byte("x-custom"), Value: []byte("kept")},
			}})
			require.NoError(t, err)

			// check asserts the trace headers of a record or delivery the
			// stack wrote, and that the custom header is kept.
			check := func(what string, h map[string]string) {
				t.Helper()
				assert.Equal(t, "kept", h["x-custom"], what)
				assert.Equal(t, inTracestate, h[wire.HeaderTracestate], what)
				assert.Equal(t, inBaggage, h["baggage"], what)
				tp := h[wire.HeaderTraceparent]
				if exp == nil {
					assert.Equal(t, inTraceparent, tp, "%s: traceparent unchanged", what)
					return
				}
				require.True(t, strings.HasPrefix(tp, "00-"+inTraceID+"-"), "%s: traceparent %q is in the upstream trace", what, tp)
				assert.NotEqual(t, inTraceparent, tp, "%s: a span of this service replaces the upstream one", what)
				spanID := strings.Split(tp, "-")[2]
				assert.Eventually(t, func() bool {
					for _, s := range exp.GetSpans() {
						if strings.HasPrefix(s.Name, "send ") && s.SpanContext.SpanID().String() == spanID {
							return true
						}
					}
					return false
				}, 10*time.Second, 20*time.Millisecond, "%s: traceparent %q is the stack's send span", what, tp)
			}
			next := func(want wire.Source) delivery {
				t.Helper()
				for {
					select {
					case d := <-deliveries:
						if d.source == want {
							return d
						}
					case <-time.After(30 * time.Second):
						t.Fatalf("no %s delivery", want)
					}
				}
			}

			check("retried delivery", next(wire.SourceRetry).md)
			c.WaitFor(t, 1, 30*time.Second, onTopic(rn.Stack.DLQTopic()))

			require.NoError(t, rn.Stack.StartReprocess(dlq.ReprocessOptions{Topic: topic}))
			check("reprocessed delivery", next(wire.SourceReprocess).md)
			check("retried reprocessed delivery", next(wire.SourceRetry).md)
			dead := c.WaitFor(t, 2, 30*time.Second, onTopic(rn.Stack.DLQTopic()))
			retries := c.Records(onRetry)
			require.Len(t, retries, 2, "one retry record per pass")
			for _, r := range append(retries, dead...) {
				check(r.Topic, r.Headers)
			}
		})
	}
}
