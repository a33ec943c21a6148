package kafkaevents_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestTraceFollowsMessageThroughRetriesIntoDLQ produces a record inside a
// trace, lets its handler fail twice (one retry allowed) and checks that every
// span of the flow belongs to that trace, with the documented parents: each
// retry is a child of the failed attempt, each delivery a child of the send
// span of the record it came from.
func TestTraceFollowsMessageThroughRetriesIntoDLQ(t *testing.T) {
	env := newEnv(t)
	topic := uniq("traced")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("traced")
	cfg.Retry.Attempts = 1
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Traced.handle", func(msg *message.Message) error {
			return errors.New("handler failed")
		})
		require.NoError(t, err)
	}, kafkaevents.WithTracerProvider(tp), kafkaevents.WithPropagator(prop))
	c := env.collect(t, append(rn.Stack.RetryTopics(), rn.Stack.DLQTopic())...)

	ctx, root := tp.Tracer("test").Start(t.Context(), "POST /orders")
	res, err := rn.Stack.Producer().Send(ctx, kafkaevents.Message{Topic: topic, Key: "order-7", Value: "{}", CorrelationID: "corr-traced-7"})
	require.NoError(t, err)
	root.End()
	traceID := root.SpanContext().TraceID()

	c.WaitFor(t, 1, 30*time.Second, onTopic(rn.Stack.DLQTopic()))
	// The DLQ record's send span ends when the broker acknowledges it, which
	// can be before the dlq_store and process spans around it end: wait for
	// all of them.
	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = exp.GetSpans()
		count := map[string]int{}
		for _, s := range spans {
			count[s.Name]++
		}
		return count["send "+rn.Stack.DLQTopic()] == 1 && count["dlq_store "+topic] == 1 && count["process "+topic] == 2
	}, 10*time.Second, 20*time.Millisecond)

	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == traceID {
			byName[s.Name] = append(byName[s.Name], s)
		}
	}
	lane := rn.Stack.RetryTopics()[0]
	for _, name := range []string{"send " + topic, "process " + topic, "retry " + topic, "send " + lane, "dlq_store " + topic, "send " + rn.Stack.DLQTopic()} {
		require.NotEmpty(t, byName[name], "span %q in the producer's trace; have %v", name, names(spans))
	}
	for _, s := range spans {
		assert.Equal(t, traceID, s.SpanContext.TraceID(), "span %s left the trace", s.Name)
	}
	send := byName["send "+topic][0]
	assert.Equal(t, root.SpanContext().SpanID(), send.Parent.SpanID())
	assert.Equal(t, trace.SpanKindProducer, send.SpanKind)

	procs := byName["process "+topic]
	require.Len(t, procs, 2, "first delivery and one retry")
	first, second := procs[0], procs[1]
	if attrs(first.Snapshot())["kafkaevents.retry_count"].AsInt64() != 0 {
		first, second = second, first
	}
	assert.Equal(t, send.SpanContext.SpanID(), first.Parent.SpanID(), "first delivery is a child of the send span")
	retry := byName["retry "+topic][0]
	assert.Equal(t, first.SpanContext.SpanID(), retry.Parent.SpanID(), "the retry is a child of the failed attempt")
	laneSend := byName["send "+lane][0]
	assert.Equal(t, retry.SpanContext.SpanID(), laneSend.Parent.SpanID())
	assert.Equal(t, laneSend.SpanContext.SpanID(), second.Parent.SpanID(), "the retried delivery is a child of the retry record's send span")
	dlqStore := byName["dlq_store "+topic][0]
	assert.Equal(t, second.SpanContext.SpanID(), dlqStore.Parent.SpanID())
	dlqSend := byName["send "+rn.Stack.DLQTopic()][0]
	assert.Equal(t, dlqStore.SpanContext.SpanID(), dlqSend.Parent.SpanID())

	for _, p := range procs {
		a := attrs(p.Snapshot())
		assert.Equal(t, trace.SpanKindConsumer, p.SpanKind)
		assert.Equal(t, "kafka", a["messaging.system"].AsString())
		assert.Equal(t, topic, a["messaging.destination.name"].AsString())
		assert.Equal(t, "process", a["messaging.operation.type"].AsString())
		assert.Equal(t, cfg.Consumer.GroupID, a["messaging.consumer.group.name"].AsString())
		assert.Equal(t, "order-7", a["messaging.kafka.message.key"].AsString())
		assert.Equal(t, "corr-traced-7", a["messaging.message.conversation_id"].AsString())
		assert.Equal(t, "Traced.handle", a["kafkaevents.handler_id"].AsString())
		assert.Contains(t, a, attribute.Key("messaging.kafka.offset"))
		assert.Contains(t, a, attribute.Key("messaging.destination.partition.id"))
		assert.Equal(t, "Error", p.Status.Code.String())
		assert.Equal(t, "_OTHER", a["error.type"].AsString(), "a failed process span has error.type")
		assert.Equal(t, cfg.ClientID, a["messaging.client.id"].AsString())
		host, port, err := net.SplitHostPort(env.Brokers[0])
		require.NoError(t, err)
		assert.Equal(t, host, a["server.address"].AsString())
		assert.Equal(t, port, fmt.Sprint(a["server.port"].AsInt64()))
	}
	assert.Equal(t, cfg.ClientID, attrs(laneSend.Snapshot())["messaging.client.id"].AsString())
	assert.Equal(t, lane, attrs(laneSend.Snapshot())["messaging.destination.name"].AsString(), "the retry record's send span names the retry topic")
	ra := attrs(retry.Snapshot())
	assert.Equal(t, "retry", ra["kafkaevents.operation"].AsString())
	assert.Equal(t, int64(1), ra["kafkaevents.retry_count"].AsInt64())
	assert.InDelta(t, 0.1, ra["kafkaevents.retry.delay"].AsFloat64(), 1e-9, "seconds")
	assert.Equal(t, lane, ra["messaging.destination.name"].AsString(), "the retry span names the topic it writes")
	assert.Equal(t, topic, ra["kafkaevents.original_topic"].AsString())
	da := attrs(dlqStore.Snapshot())
	assert.Equal(t, "dlq_store", da["kafkaevents.operation"].AsString())
	assert.Equal(t, string(wire.ReasonRetriesExhausted), da["kafkaevents.dlq.reason"].AsString())
	assert.Equal(t, rn.Stack.DLQTopic(), da["messaging.destination.name"].AsString(), "the DLQ span names the topic it writes")

	// The correlation ID is the same on every record of the flow.
	for _, r := range c.Records(nil) {
		assert.Equal(t, "corr-traced-7", r.Headers[wire.HeaderCorrelationID], r.Topic)
		assert.Contains(t, r.Headers[wire.HeaderTraceparent], traceID.String(), r.Topic)
	}
	assert.Equal(t, "corr-traced-7", res.CorrelationID)
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestUntracedAndCorruptTraceContext: a record without trace context starts a
// new trace; a corrupt traceparent is ignored and the record handled.
func TestUntracedAndCorruptTraceContext(t *testing.T) {
	env := newEnv(t)
	topic := uniq("corrupt-tp")
	env.createTopics(t, 1, topic)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	handled := make(chan string, 10)
	start(t, env.baseConfig("corrupt"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Corrupt.handle", func(msg *message.Message) error {
			handled <- string(msg.Payload)
			return nil
		})
		require.NoError(t, err)
	}, kafkaevents.WithTracerProvider(tp), kafkaevents.WithPropagator(propagation.TraceContext{}))
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	for _, tc := range []struct{ value, tp string }{
		{"none", ""},
		{"garbage", "not-a-traceparent"},
		{"zero", "00-00000000000000000000000000000000-0000000000000000-01"},
		{"version", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(tc.value)}
		if tc.tp != "" {
			pm.Headers = []sarama.RecordHeader{{Key: []byte("traceparent"), Value: []byte(tc.tp)}}
		}
		_, _, err := raw.SendMessage(pm)
		require.NoError(t, err)
	}
	got := map[string]bool{}
	for len(got) < 4 {
		select {
		case v := <-handled:
			got[v] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("handled only %v", got)
		}
	}
	var procs []tracetest.SpanStub
	require.Eventually(t, func() bool {
		procs = nil
		for _, s := range exp.GetSpans() {
			if s.Name == "process "+topic {
				procs = append(procs, s)
			}
		}
		return len(procs) == 4
	}, 10*time.Second, 20*time.Millisecond)
	traces := map[trace.TraceID]bool{}
	for _, s := range procs {
		assert.False(t, s.Parent.IsValid(), "a new trace for each record")
		traces[s.SpanContext.TraceID()] = true
	}
	assert.Len(t, traces, 4)
}

// TestWithoutTracingRecordsAndPropagatesNothing runs the flow of the test
// above with WithoutTracing next to a recording provider and a W3C
// propagator: the option wins, so no span is recorded and no record the
// stack writes (the send, its retry, its DLQ record) carries a trace context,
// even though the producer is called inside a recording span.
func TestWithoutTracingRecordsAndPropagatesNothing(t *testing.T) {
	env := newEnv(t)
	topic := uniq("untraced")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("untraced")
	cfg.Retry.Attempts = 1
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	handled := make(chan trace.SpanContext, 2)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Untraced.handle", func(msg *message.Message) error {
			handled <- trace.SpanContextFromContext(msg.Context())
			return errors.New("handler failed")
		})
		require.NoError(t, err)
	}, kafkaevents.WithTracerProvider(tp), kafkaevents.WithPropagator(prop), kafkaevents.WithoutTracing())
	assert.Nil(t, rn.Stack.Tracer())
	assert.Len(t, rn.Stack.Middlewares(), 5, "admission and correlation, DLQ, retry, metrics, guard: no tracing")
	c := env.collect(t, append([]string{topic}, append(rn.Stack.RetryTopics(), rn.Stack.DLQTopic())...)...)

	ctx, root := tp.Tracer("test").Start(t.Context(), "POST /orders")
	_, err := rn.Stack.Producer().Send(ctx, kafkaevents.Message{Topic: topic, Key: "order-8", Value: "{}", CorrelationID: "corr-untraced-8"})
	require.NoError(t, err)
	root.End()

	c.WaitFor(t, 1, 30*time.Second, onTopic(rn.Stack.DLQTopic()))
	for range 2 {
		sc := <-handled
		assert.False(t, sc.IsValid(), "the handler's context holds no span")
	}
	records := c.Records(nil)
	require.Len(t, records, 3, "the send, one retry, one DLQ record")
	for _, r := range records {
		assert.NotContains(t, r.Headers, wire.HeaderTraceparent, r.Topic)
		assert.Equal(t, "corr-untraced-8", r.Headers[wire.HeaderCorrelationID], r.Topic)
	}
	assert.Equal(t, []string{"POST /orders"}, names(exp.GetSpans()), "only the test's own span")
}
