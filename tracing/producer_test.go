package tracing_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
)

func hdr(k, v string) sarama.RecordHeader {
	return sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
}

func headerValues(hs []sarama.RecordHeader, key string) []string {
	var vs []string
	for _, h := range hs {
		if string(h.Key) == key {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

func TestStartSend(t *testing.T) {
	tr, exp, tp := newTracer(t, tracing.Config{})
	ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
	member, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	bag, err := baggage.New(member)
	require.NoError(t, err)
	ctx = baggage.ContextWithBaggage(ctx, bag)

	original := []sarama.RecordHeader{
		hdr("traceparent", remoteTraceparent),
		hdr("x-correlation-id", "corr-9"),
		hdr("tracestate", remoteTracestate),
		hdr("traceparent", remoteTraceparent),
		hdr("a", "1"),
	}
	snapshot := slices.Clone(original)
	rec := &sarama.ProducerMessage{Topic: "payments", Key: sarama.StringEncoder("k-1"), Headers: original}

	sendCtx, end := tr.StartSend(ctx, rec)
	sendSC := trace.SpanContextFromContext(sendCtx)
	require.True(t, sendSC.IsValid())

	assert.Equal(t, snapshot, original, "the caller's header slice must not be modified")
	tps := headerValues(rec.Headers, "traceparent")
	require.Len(t, tps, 1, "traceparent must be replaced, not duplicated")
	got := tr.InjectHeaders(sendCtx, nil)
	assert.Equal(t, headerValues(got, "traceparent"), tps, "the header carries the send span")
	assert.Empty(t, headerValues(rec.Headers, "tracestate"), "a tracestate of another trace must go")
	assert.Equal(t, []string{"tenant=acme"}, headerValues(rec.Headers, "baggage"))
	assert.Equal(t, []string{"1"}, headerValues(rec.Headers, "a"))
	assert.Equal(t, []string{"corr-9"}, headerValues(rec.Headers, "x-correlation-id"))
	assert.Empty(t, exp.GetSpans(), "the span ends only when end is called")

	end(5, 99, nil)
	parent.End()
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	s := spans[0]
	assert.Equal(t, "send payments", s.Name)
	assert.Equal(t, trace.SpanKindProducer, s.SpanKind)
	assert.Equal(t, sendSC, s.SpanContext)
	assert.Equal(t, parent.SpanContext().SpanID(), s.Parent.SpanID(), "child of the span in ctx")
	assert.Equal(t, parent.SpanContext().TraceID(), s.SpanContext.TraceID())
	assert.Equal(t, codes.Unset, s.Status.Code)
	assert.Equal(t, map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("kafka"),
		"messaging.destination.name":         attribute.StringValue("payments"),
		"messaging.operation.type":           attribute.StringValue("send"),
		"messaging.operation.name":           attribute.StringValue("send"),
		"messaging.kafka.message.key":        attribute.StringValue("k-1"),
		"messaging.message.conversation_id":  attribute.StringValue("corr-9"),
		"messaging.destination.partition.id": attribute.StringValue("5"),
		"messaging.kafka.offset":             attribute.Int64Value(99),
	}, attrMap(s.Attributes))
}

func TestStartSend_Error(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	rec := &sarama.ProducerMessage{Topic: "payments"}
	_, end := tr.StartSend(t.Context(), rec)
	require.Len(t, headerValues(rec.Headers, "traceparent"), 1)

	end(0, 0, errors.New("broker unavailable"))
	s := onlySpan(t, exp)
	assert.False(t, s.Parent.IsValid())
	assert.Equal(t, codes.Error, s.Status.Code)
	assert.Equal(t, "broker unavailable", s.Status.Description)
	assert.True(t, hasEvent(s, "exception"))
	attrs := attrMap(s.Attributes)
	assert.NotContains(t, attrs, attribute.Key("messaging.destination.partition.id"))
	assert.NotContains(t, attrs, attribute.Key("messaging.kafka.offset"))
	assert.NotContains(t, attrs, attribute.Key("messaging.kafka.message.key"))
	assert.NotContains(t, attrs, attribute.Key("messaging.message.conversation_id"))
}

type failingEncoder struct{}

func (failingEncoder) Encode() ([]byte, error) { return nil, errors.New("no") }
func (failingEncoder) Length() int             { return 0 }

type jsonKey struct{}

func (jsonKey) Encode() ([]byte, error) { return []byte(`{"id":1}`), nil }
func (jsonKey) Length() int             { return 8 }

func TestStartSend_Key(t *testing.T) {
	tests := []struct {
		name string
		key  sarama.Encoder
		want string // "" for no attribute
	}{
		{name: "nil", key: nil},
		{name: "string", key: sarama.StringEncoder("k"), want: "k"},
		{name: "bytes", key: sarama.ByteEncoder("b"), want: "b"},
		{name: "nil bytes", key: sarama.ByteEncoder(nil)},
		{name: "binary", key: sarama.ByteEncoder{0xff, 0x00, 0xfe}},
		{name: "invalid UTF-8 string", key: sarama.StringEncoder("\xff")},
		{name: "other encoder", key: jsonKey{}, want: `{"id":1}`},
		{name: "encoder error", key: failingEncoder{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp, _ := newTracer(t, tracing.Config{})
			_, end := tr.StartSend(t.Context(), &sarama.ProducerMessage{Topic: "t", Key: tt.key})
			end(0, 1, nil)
			v, ok := attrMap(onlySpan(t, exp).Attributes)["messaging.kafka.message.key"]
			if tt.want == "" {
				assert.False(t, ok, "no key attribute expected, got %q", v.AsString())
				return
			}
			assert.Equal(t, tt.want, v.AsString())
		})
	}
}

func TestStartSend_NilRecord(t *testing.T) {
	tr, exp, _ := newTracer(t, tracing.Config{})
	ctx := t.Context()
	got, end := tr.StartSend(ctx, nil)
	end(0, 0, nil)
	assert.Equal(t, ctx, got)
	assert.Empty(t, exp.GetSpans())
}

func TestInjectHeaders_NoSpan(t *testing.T) {
	tr, _, _ := newTracer(t, tracing.Config{})
	in := []sarama.RecordHeader{hdr("traceparent", remoteTraceparent), hdr("tracestate", remoteTracestate)}
	out := tr.InjectHeaders(context.Background(), in)
	assert.Equal(t, in, out, "without a span or baggage in ctx the headers stay as they are")
}
