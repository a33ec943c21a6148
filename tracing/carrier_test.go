package tracing_test

import (
	"context"
	"sort"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
)

func TestMetadataCarrier(t *testing.T) {
	md := message.Metadata{"a": "1", "traceparent": "x"}
	c := tracing.MetadataCarrier(md)
	assert.Equal(t, "1", c.Get("a"))
	assert.Empty(t, c.Get("Traceparent"), "keys are case-sensitive")
	assert.Empty(t, tracing.MetadataCarrier(nil).Get("a"))

	c.Set("traceparent", "y")
	assert.Equal(t, "y", md.Get("traceparent"), "the carrier writes into the metadata")
	keys := c.Keys()
	sort.Strings(keys)
	assert.Equal(t, []string{"a", "traceparent"}, keys)
}

func TestHeadersCarrier(t *testing.T) {
	tests := []struct {
		name      string
		headers   []sarama.RecordHeader
		key, val  string
		want      []sarama.RecordHeader
		wantKeys  []string
		wantValue string // Get(key) before Set
	}{
		{
			name:     "append when absent",
			headers:  []sarama.RecordHeader{hdr("a", "1")},
			key:      "traceparent",
			val:      "new",
			want:     []sarama.RecordHeader{hdr("a", "1"), hdr("traceparent", "new")},
			wantKeys: []string{"a", "traceparent"},
		},
		{
			name:      "replace the first and drop the duplicates",
			headers:   []sarama.RecordHeader{hdr("traceparent", "old1"), hdr("a", "1"), hdr("traceparent", "old2"), hdr("b", "2"), hdr("traceparent", "old3")},
			key:       "traceparent",
			val:       "new",
			want:      []sarama.RecordHeader{hdr("traceparent", "new"), hdr("a", "1"), hdr("b", "2")},
			wantKeys:  []string{"traceparent", "a", "b"},
			wantValue: "old3",
		},
		{
			name:     "nil headers",
			headers:  nil,
			key:      "baggage",
			val:      "k=v",
			want:     []sarama.RecordHeader{hdr("baggage", "k=v")},
			wantKeys: []string{"baggage"},
		},
		{
			name:     "case-sensitive",
			headers:  []sarama.RecordHeader{hdr("Traceparent", "other")},
			key:      "traceparent",
			val:      "new",
			want:     []sarama.RecordHeader{hdr("Traceparent", "other"), hdr("traceparent", "new")},
			wantKeys: []string{"Traceparent", "traceparent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := tt.headers
			c := tracing.HeadersCarrier{Headers: &hs}
			assert.Equal(t, tt.wantValue, c.Get(tt.key), "Get returns the last value")
			c.Set(tt.key, tt.val)
			assert.Equal(t, tt.want, hs)
			assert.Equal(t, tt.val, c.Get(tt.key))
			assert.Equal(t, tt.wantKeys, c.Keys())
		})
	}
	assert.Empty(t, tracing.HeadersCarrier{}.Get("a"))
	assert.Empty(t, tracing.HeadersCarrier{}.Keys())
}

func TestInjectExtract_Metadata(t *testing.T) {
	tr, _, tp := newTracer(t, tracing.Config{})
	ctx, span := tp.Tracer("test").Start(t.Context(), "parent")
	defer span.End()
	m, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	b, err := baggage.New(m)
	require.NoError(t, err)
	ctx = baggage.ContextWithBaggage(ctx, b)

	md := message.Metadata{"traceparent": remoteTraceparent, "tracestate": remoteTracestate, "other": "kept"}
	tr.Inject(ctx, md)
	assert.NotEqual(t, remoteTraceparent, md.Get("traceparent"))
	assert.NotContains(t, md, "tracestate", "the stale tracestate is removed")
	assert.Equal(t, "kept", md.Get("other"))

	got := tr.Extract(context.Background(), md)
	assert.Equal(t, span.SpanContext().TraceID(), trace.SpanContextFromContext(got).TraceID())
	assert.Equal(t, span.SpanContext().SpanID(), trace.SpanContextFromContext(got).SpanID())
	assert.True(t, trace.SpanContextFromContext(got).IsRemote())
	assert.Equal(t, "acme", baggage.FromContext(got).Member("tenant").Value())

	tr.Inject(ctx, nil) // must not panic
}

func TestInject_KeepsTracestateOfTheSameTrace(t *testing.T) {
	tr, _, tp := newTracer(t, tracing.Config{})
	// A span whose parent came with a tracestate keeps it.
	remote := tr.Extract(t.Context(), message.Metadata{"traceparent": remoteTraceparent, "tracestate": remoteTracestate})
	ctx, span := tp.Tracer("test").Start(remote, "child")
	defer span.End()
	md := message.Metadata{}
	tr.Inject(ctx, md)
	assert.Equal(t, remoteTracestate, md.Get("tracestate"))
}
