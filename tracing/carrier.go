package tracing

import (
	"context"
	"slices"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// MetadataCarrier adapts Watermill message metadata (which holds the Kafka
// record headers of a consumed message) to propagation.TextMapCarrier. Keys
// are matched exactly, as Kafka header names are case-sensitive. Set panics on
// a nil MetadataCarrier, like assigning to a nil map.
type MetadataCarrier message.Metadata

var _ propagation.TextMapCarrier = MetadataCarrier(nil)

// Get returns the value of key, or "" when it is absent.
func (c MetadataCarrier) Get(key string) string { return c[key] }

// Set sets key to value, replacing any previous value.
func (c MetadataCarrier) Set(key, value string) { c[key] = value }

// Keys returns the keys in the metadata, in no particular order.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// HeadersCarrier adapts a slice of Sarama record headers to
// propagation.TextMapCarrier. Keys are matched exactly. Kafka allows a header
// name to repeat: Get returns the last value, as Watermill's unmarshaler does
// when it turns headers into metadata, and Set leaves exactly one header with
// the name. Set modifies the slice that Headers points to in place, its
// backing array included, and needs a non-nil Headers.
type HeadersCarrier struct {
	Headers *[]sarama.RecordHeader
}

var _ propagation.TextMapCarrier = HeadersCarrier{}

// Get returns the value of the last header named key, or "" when there is
// none.
func (c HeadersCarrier) Get(key string) string {
	if c.Headers == nil {
		return ""
	}
	hs := *c.Headers
	for i := len(hs) - 1; i >= 0; i-- {
		if string(hs[i].Key) == key {
			return string(hs[i].Value)
		}
	}
	return ""
}

// Set makes value the value of the header named key: the first header with
// that name gets the value and later ones are removed; without one, a header
// is appended.
func (c HeadersCarrier) Set(key, value string) {
	hs := *c.Headers
	i := slices.IndexFunc(hs, func(h sarama.RecordHeader) bool { return string(h.Key) == key })
	if i < 0 {
		hs = append(hs, sarama.RecordHeader{Key: []byte(key), Value: []byte(value)})
		*c.Headers = hs
		return
	}
	hs[i].Value = []byte(value)
	tail := slices.DeleteFunc(hs[i+1:], func(h sarama.RecordHeader) bool { return string(h.Key) == key })
	*c.Headers = hs[:i+1+len(tail)]
}

// Keys returns the header names, each once, in the order they first appear.
func (c HeadersCarrier) Keys() []string {
	if c.Headers == nil {
		return nil
	}
	keys := make([]string, 0, len(*c.Headers))
	for _, h := range *c.Headers {
		if k := string(h.Key); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// Inject writes the trace context and baggage of ctx into md with the
// configured propagator, replacing the values already there. When ctx holds a
// valid span context, a tracestate left in md from another span is removed
// first (the W3C propagator writes tracestate only when it is not empty). A
// nil md is left alone, as is md for a nil Tracer.
func (t *Tracer) Inject(ctx context.Context, md message.Metadata) {
	if t == nil || md == nil {
		return
	}
	if t.propFields().tracestate && trace.SpanContextFromContext(ctx).IsValid() {
		delete(md, headerTracestate)
	}
	t.prop.Inject(ctx, MetadataCarrier(md))
}

// Extract returns ctx with the trace context and baggage found in md, read
// with the configured propagator. Values that do not parse are ignored: ctx is
// then returned as it is. A nil Tracer returns ctx.
func (t *Tracer) Extract(ctx context.Context, md message.Metadata) context.Context {
	if t == nil || len(t.propFields().names) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, MetadataCarrier(md))
}

// InjectHeaders returns headers with the trace context and baggage of ctx
// written with the configured propagator: a header the propagator writes
// replaces every header of the same name (so none is duplicated), and the
// others are added. Like Inject, it removes a stale tracestate when ctx holds
// a valid span context. headers itself is not modified: the result is a new
// slice, or headers when the propagator writes no field. A nil Tracer returns
// headers.
func (t *Tracer) InjectHeaders(ctx context.Context, headers []sarama.RecordHeader) []sarama.RecordHeader {
	if t == nil {
		return headers
	}
	fields := t.propFields()
	if len(fields.names) == 0 {
		return headers
	}
	sc := trace.SpanContextFromContext(ctx)
	out := make([]sarama.RecordHeader, len(headers), len(headers)+len(fields.names))
	copy(out, headers)
	if fields.tracestate && sc.IsValid() {
		out = slices.DeleteFunc(out, func(h sarama.RecordHeader) bool { return string(h.Key) == headerTracestate })
	}
	t.prop.Inject(ctx, HeadersCarrier{Headers: &out})
	return out
}
