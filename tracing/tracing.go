package tracing

import (
	"net"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope name of the tracer this package
// obtains from the tracer provider.
const ScopeName = "github.com/torix/kafkaevents/tracing"

// Attribute keys specific to kafkaevents, in a namespace of their own. The
// other attributes are those of the OpenTelemetry semantic conventions for
// messaging (and error.type, server.address, server.port).
const (
	// HandlerIDKey is the handler a message is delivered to, or that failed.
	HandlerIDKey = attribute.Key("kafkaevents.handler_id")
	// DeliverySourceKey says where a delivery comes from: "main", "retry"
	// or "reprocess" (wire.Source).
	DeliverySourceKey = attribute.Key("kafkaevents.delivery.source")
	// RetryCountKey is 0 for a first delivery, k for the k-th retry; on a
	// retry span, the attempt being scheduled; on a DLQ span, the number of
	// retries that ran.
	RetryCountKey = attribute.Key("kafkaevents.retry_count")
	// RetryDelayKey is the delay of a scheduled retry, in seconds (a float).
	RetryDelayKey = attribute.Key("kafkaevents.retry.delay")
	// OperationKey is "retry" or "dlq_store" on the internal spans.
	OperationKey = attribute.Key("kafkaevents.operation")
	// DLQReasonKey is why a record is stored in the DLQ (wire.Reason).
	DLQReasonKey = attribute.Key("kafkaevents.dlq.reason")
	// OriginalTopicKey is the topic a message was first consumed from, on
	// the retry and DLQ spans, whose messaging.destination.name is the topic
	// they write to.
	OriginalTopicKey = attribute.Key("kafkaevents.original_topic")
)

// Values of OperationKey.
const (
	OperationRetry    = "retry"
	OperationDLQStore = "dlq_store"
)

// Config configures a Tracer. The zero value is ready to use.
type Config struct {
	// TracerProvider creates the tracer. Optional. Default:
	// otel.GetTracerProvider(), called by New. If New runs before the
	// application calls otel.SetTracerProvider, the provider it gets
	// records nothing until then and forwards to the one set afterwards.
	TracerProvider trace.TracerProvider
	// Propagator reads and writes the trace context in message metadata and
	// record headers. Optional. Default: otel.GetTextMapPropagator(),
	// called by New, which likewise forwards to a propagator set later with
	// otel.SetTextMapPropagator. The global propagator propagates nothing
	// until one is set; most applications want
	// propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}).
	Propagator propagation.TextMapPropagator
	// ConsumerGroup is recorded as messaging.consumer.group.name on process
	// spans. Optional. Default: the attribute is not recorded.
	ConsumerGroup string
	// ClientID is recorded as messaging.client.id on process and send
	// spans. Optional. Default: the attribute is not recorded.
	ClientID string
	// Broker is a bootstrap broker, "host:port", recorded as server.address
	// and server.port on process and send spans. Optional. Default: the
	// attributes are not recorded.
	Broker string
}

// Tracer records the spans of kafkaevents and propagates the trace context.
// It is safe for concurrent use. A nil *Tracer is valid and does nothing.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	group  string
	// common are the attributes of every process and send span that come
	// from the Config (client ID, server address and port).
	common []attribute.KeyValue

	// noop is true when the provider is known never to record: the
	// middleware then only propagates the context.
	noop bool
	// globalProp is true when prop is the global propagator as New found
	// it. If the application had not set one yet, that is OpenTelemetry's
	// delegating propagator, which writes no field until the first
	// otel.SetTextMapPropagator and those of the propagator set then
	// afterwards: its fields are read until they are not empty, and then
	// kept (see propFields).
	globalProp bool
	// propComparable is whether prop can be compared with ==.
	propComparable bool
	// fields describes the fields of prop: set by New unless globalProp,
	// then by propFields once the global propagator has fields.
	fields atomic.Pointer[propFieldSet]
	// starts caches the span names and start options of the hot paths.
	starts startCache
}

// New returns a Tracer configured by cfg. It never returns nil.
func New(cfg Config) *Tracer {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := cfg.Propagator
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	fields := prop.Fields()
	t := &Tracer{
		tracer:         tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:           prop,
		group:          cfg.ConsumerGroup,
		common:         commonAttributes(cfg),
		globalProp:     cfg.Propagator == nil,
		propComparable: reflect.TypeOf(prop).Comparable(),
	}
	if !t.globalProp || len(fields) > 0 {
		t.fields.Store(newPropFieldSet(fields))
	}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		t.noop = true
	}
	return t
}

// commonAttributes returns messaging.client.id, server.address and
// server.port as far as cfg gives them.
func commonAttributes(cfg Config) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if cfg.ClientID != "" {
		attrs = append(attrs, semconv.MessagingClientID(cfg.ClientID))
	}
	if cfg.Broker != "" {
		host, port, err := net.SplitHostPort(cfg.Broker)
		if err != nil {
			host, port = cfg.Broker, ""
		}
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	}
	return attrs
}

// propFieldSet is what the tracer needs to know of a propagator's fields.
type propFieldSet struct {
	names []string
	// tracestate is true when the propagator writes the W3C tracestate
	// header, which must not outlive the traceparent it belongs to.
	tracestate bool
	// traceparent and baggage are true when the propagator writes those
	// headers; those it does not write are carried over verbatim from the
	// record being handled (see withCarried).
	traceparent, baggage bool
}

func newPropFieldSet(names []string) *propFieldSet {
	return &propFieldSet{
		names:       names,
		tracestate:  slices.Contains(names, headerTracestate),
		traceparent: slices.Contains(names, headerTraceparent),
		baggage:     slices.Contains(names, headerBaggage),
	}
}

var noPropFields = &propFieldSet{}

// propFields returns the fields the propagator writes. Those of a
// propagator of the tracer's own, or of the global one once it has fields,
// are known; the global propagator as New found it has none as long as
// otel.GetTextMapPropagator still returns it (nothing was set since), and
// otherwise its fields are read, and kept once there are some.
func (t *Tracer) propFields() *propFieldSet {
	if f := t.fields.Load(); f != nil {
		return f
	}
	if t.propComparable && otel.GetTextMapPropagator() == t.prop {
		return noPropFields
	}
	names := t.prop.Fields()
	if len(names) == 0 {
		return noPropFields
	}
	f := newPropFieldSet(names)
	t.fields.Store(f)
	return f
}

const (
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
)

// Attribute values shared by every span.
var (
	attrSystem      = semconv.MessagingSystemKafka
	attrOpProcess   = semconv.MessagingOperationTypeProcess
	attrOpSend      = semconv.MessagingOperationTypeSend
	attrNameProcess = semconv.MessagingOperationName("process")
	attrNameSend    = semconv.MessagingOperationName("send")
	attrRetry       = OperationKey.String(OperationRetry)
	attrDLQStore    = OperationKey.String(OperationDLQStore)

	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
)
