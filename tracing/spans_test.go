package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

func TestStartRetry(t *testing.T) {
	tr, exp, tp := newTracer(t, tracing.Config{})
	ctx, parent := tp.Tracer("test").Start(t.Context(), "process orders")
	rctx, span := tr.StartRetry(ctx, tracing.RetrySpan{HandlerID: "h1", Topic: "orders", Destination: "svc.retry.2s", RetryCount: 3, Delay: 1500 * time.Millisecond})
	assert.Equal(t, span.SpanContext(), trace.SpanContextFromContext(rctx))
	span.End()
	parent.End()

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	s := spans[0]
	assert.Equal(t, "retry orders", s.Name)
	assert.Equal(t, trace.SpanKindInternal, s.SpanKind)
	assert.Equal(t, parent.SpanContext().SpanID(), s.Parent.SpanID())
	assert.Equal(t, codes.Unset, s.Status.Code)
	assert.Equal(t, map[attribute.Key]attribute.Value{
		"kafkaevents.operation":      attribute.StringValue("retry"),
		"kafkaevents.handler_id":     attribute.StringValue("h1"),
		"kafkaevents.retry_count":    attribute.Int64Value(3),
		"kafkaevents.retry.delay":    attribute.Float64Value(1.5),
		"kafkaevents.original_topic": attribute.StringValue("orders"),
		"messaging.destination.name": attribute.StringValue("svc.retry.2s"),
	}, attrMap(s.Attributes))
}

func TestStartDLQ(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantEvent bool
	}{
		{name: "with the handler error", err: errors.New("invalid order"), wantEvent: true},
		{name: "without an error", err: nil, wantEvent: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp, tp := newTracer(t, tracing.Config{})
			ctx, parent := tp.Tracer("test").Start(t.Context(), "process orders")
			_, span := tr.StartDLQ(ctx, tracing.DLQSpan{HandlerID: "h1", Topic: "orders", Destination: "svc.dlq", Reason: "permanent", RetryCount: 4, Err: tt.err})
			span.End()
			parent.End()

			spans := exp.GetSpans()
			require.Len(t, spans, 2)
			s := spans[0]
			assert.Equal(t, "dlq_store orders", s.Name)
			assert.Equal(t, trace.SpanKindInternal, s.SpanKind)
			assert.Equal(t, parent.SpanContext().SpanID(), s.Parent.SpanID())
			assert.Equal(t, codes.Unset, s.Status.Code, "storing in the DLQ is this span's success")
			assert.Equal(t, tt.wantEvent, hasEvent(s, "exception"))
			assert.Equal(t, map[attribute.Key]attribute.Value{
				"kafkaevents.operation":      attribute.StringValue("dlq_store"),
				"kafkaevents.dlq.reason":     attribute.StringValue("permanent"),
				"kafkaevents.handler_id":     attribute.StringValue("h1"),
				"kafkaevents.retry_count":    attribute.Int64Value(4),
				"kafkaevents.original_topic": attribute.StringValue("orders"),
				"messaging.destination.name": attribute.StringValue("svc.dlq"),
			}, attrMap(s.Attributes))
		})
	}
}

func TestInSpan(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		fn       func(context.Context) error
		wantCode codes.Code
		wantDesc string
		panics   bool
	}{
		{name: "success", fn: func(context.Context) error { return nil }, wantCode: codes.Unset},
		{name: "error", fn: func(context.Context) error { return boom }, wantCode: codes.Error, wantDesc: "boom"},
		{name: "panic", fn: func(context.Context) error { panic("kaboom") }, wantCode: codes.Error, wantDesc: "panic: kaboom", panics: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp, _ := newTracer(t, tracing.Config{})
			var inner trace.SpanContext
			run := func() error {
				return tr.InSpan(t.Context(), "validate", func(ctx context.Context) error {
					inner = trace.SpanContextFromContext(ctx)
					return tt.fn(ctx)
				}, trace.WithSpanKind(trace.SpanKindClient))
			}
			if tt.panics {
				require.PanicsWithValue(t, "kaboom", func() { _ = run() })
			} else {
				err := run()
				if tt.wantCode == codes.Error {
					require.ErrorIs(t, err, boom)
				} else {
					require.NoError(t, err)
				}
			}

			s := onlySpan(t, exp)
			assert.Equal(t, "validate", s.Name)
			assert.Equal(t, trace.SpanKindClient, s.SpanKind, "options are applied")
			assert.Equal(t, inner, s.SpanContext, "fn runs in the span")
			assert.Equal(t, tt.wantCode, s.Status.Code)
			assert.Equal(t, tt.wantDesc, s.Status.Description)
			assert.Equal(t, tt.wantCode == codes.Error, hasEvent(s, "exception"))
		})
	}
}

func TestMarkFailed(t *testing.T) {
	_, exp, tp := newTracer(t, tracing.Config{})
	_, ok := tp.Tracer("test").Start(t.Context(), "ok")
	tracing.MarkFailed(ok, nil)
	ok.End()
	_, failed := tp.Tracer("test").Start(t.Context(), "failed")
	tracing.MarkFailed(failed, errors.New("nope"))
	failed.End()
	tracing.MarkFailed(nil, errors.New("no span")) // must not panic

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	assert.Equal(t, codes.Unset, spans[0].Status.Code)
	assert.Empty(t, spans[0].Events)
	assert.Equal(t, codes.Error, spans[1].Status.Code)
	assert.Equal(t, "nope", spans[1].Status.Description)
	assert.True(t, hasEvent(spans[1], "exception"))
}

func TestNilTracer(t *testing.T) {
	var tr *tracing.Tracer
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: remoteTraceID, SpanID: remoteSpanID, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)

	msg := deliveredMessage(ctx, message.Metadata{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	called := false
	_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
		called = true
		assert.Equal(t, sc, trace.SpanContextFromContext(m.Context()), "the context passes through")
		return nil, nil
	})(msg)
	require.NoError(t, err)
	require.True(t, called)

	rec := &sarama.ProducerMessage{Topic: "t", Headers: []sarama.RecordHeader{hdr("a", "1")}}
	got, end := tr.StartSend(ctx, rec)
	end(1, 2, errors.New("ignored"))
	assert.Equal(t, ctx, got)
	assert.Equal(t, []sarama.RecordHeader{hdr("a", "1")}, rec.Headers, "no trace headers from a nil tracer")

	for name, start := range map[string]func() (context.Context, trace.Span){
		"retry": func() (context.Context, trace.Span) { return tr.StartRetry(ctx, tracing.RetrySpan{Topic: "t"}) },
		"dlq": func() (context.Context, trace.Span) {
			return tr.StartDLQ(ctx, tracing.DLQSpan{Topic: "t", Err: errors.New("x")})
		},
	} {
		got, span := start()
		assert.Equal(t, ctx, got, name)
		assert.False(t, span.IsRecording(), name)
		assert.Equal(t, sc, span.SpanContext(), name)
		tracing.MarkFailed(span, errors.New("x"))
		span.End()
	}

	var inner context.Context
	require.NoError(t, tr.InSpan(ctx, "x", func(c context.Context) error { inner = c; return nil }))
	assert.Equal(t, ctx, inner)

	md := message.Metadata{}
	tr.Inject(ctx, md)
	assert.Empty(t, md)
	assert.Equal(t, ctx, tr.Extract(ctx, message.Metadata{"traceparent": remoteTraceparent}))
	hs := []sarama.RecordHeader{hdr("a", "1")}
	assert.Equal(t, hs, tr.InjectHeaders(ctx, hs))
}

func TestNew_Defaults(t *testing.T) {
	// The zero Config uses the OTel globals, which no test sets: the global
	// provider records nothing and the global propagator carries nothing.
	tr := tracing.New(tracing.Config{})
	require.NotNil(t, tr)
	msg := deliveredMessage(t.Context(), message.Metadata{"traceparent": remoteTraceparent})
	_, err := tr.Middleware(okHandler)(msg)
	require.NoError(t, err)
	assert.False(t, trace.SpanContextFromContext(msg.Context()).IsValid(),
		"the default global propagator extracts nothing")
}

// TestNew_GlobalPropagatorSetAfterNew: a tracer built before the application
// sets the global propagator carries nothing until then, and uses that
// propagator's fields from then on. It runs in a child process, since the
// globals cannot be unset for the other tests.
func TestNew_GlobalPropagatorSetAfterNew(t *testing.T) {
	if os.Getenv("KAFKAEVENTS_TRACING_GLOBAL_CHILD") == "1" {
		globalPropagatorSetAfterNew(t)
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestNew_GlobalPropagatorSetAfterNew$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KAFKAEVENTS_TRACING_GLOBAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child process:\n%s", out)
	assert.Contains(t, string(out), "PASS")
}

func globalPropagatorSetAfterNew(t *testing.T) {
	tr := tracing.New(tracing.Config{TracerProvider: noop.NewTracerProvider()})
	seen := func() trace.SpanContext {
		var sc trace.SpanContext
		_, err := tr.Middleware(func(m *message.Message) ([]*message.Message, error) {
			sc = trace.SpanContextFromContext(m.Context())
			return nil, nil
		})(deliveredMessage(t.Context(), message.Metadata{"traceparent": remoteTraceparent}))
		require.NoError(t, err)
		return sc
	}
	parent := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: remoteTraceID, SpanID: remoteSpanID, TraceFlags: trace.FlagsSampled,
	}))
	hs := []sarama.RecordHeader{hdr("a", "1")}

	assert.False(t, seen().IsValid(), "no propagator set yet: nothing extracted")
	assert.Equal(t, hs, tr.InjectHeaders(parent, hs), "nothing injected")

	otel.SetTextMapPropagator(newPropagator())
	assert.Equal(t, remoteTraceID, seen().TraceID(), "extracted with the propagator set after New")
	out := tr.InjectHeaders(parent, hs)
	require.Len(t, out, 2)
	assert.Equal(t, "traceparent", string(out[1].Key))
}

// A failed span says what kind of failure it was (error.type), with a value of
// low cardinality.
func TestMarkFailedSetsErrorType(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"plain error", errors.New("boom"), "_OTHER"},
		{"wrapped plain error", fmt.Errorf("charge: %w", errors.New("boom")), "_OTHER"},
		{"permanent", wire.Permanent(errors.New("bad order")), "permanent"},
		{"undecodable", wire.Undecodable(errors.New("bad json")), "undecodable"},
		{"panic", &wire.PanicError{Value: "nil map"}, "panic"},
		{"a type of its own", &net.DNSError{Err: "no such host", Name: "kafka"}, "*net.DNSError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, exp, _ := newTracer(t, tracing.Config{})
			_ = tr.InSpan(t.Context(), "op", func(context.Context) error { return tc.err })
			s := onlySpan(t, exp)
			assert.Equal(t, codes.Error, s.Status.Code)
			assert.Equal(t, tc.want, attrMap(s.Attributes)["error.type"].AsString())
		})
	}
}

// Process and send spans name the client and the broker it connects to.
func TestSpansCarryClientAndServer(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{ClientID: "billing", Broker: "kafka-1.internal:9093"})
	_, end := tr.StartSend(t.Context(), &sarama.ProducerMessage{Topic: "orders"})
	end(0, 1, nil)
	_, _ = tr.Middleware(okHandler)(deliveredMessage(t.Context(), message.Metadata{}))
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	for _, s := range spans {
		a := attrMap(s.Attributes)
		assert.Equal(t, "billing", a["messaging.client.id"].AsString(), s.Name)
		assert.Equal(t, "kafka-1.internal", a["server.address"].AsString(), s.Name)
		assert.Equal(t, int64(9093), a["server.port"].AsInt64(), s.Name)
	}
}
