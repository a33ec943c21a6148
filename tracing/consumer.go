package tracing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/wire"
)

// Middleware is a Watermill handler middleware (use the method value:
// router.AddMiddleware(tracer.Middleware)) that records a "process {topic}"
// span, kind Consumer, around each delivery.
//
// The span's parent is read from the message metadata (the record headers)
// with the configured propagator, which also extracts the baggage. When the
// message context already holds a valid span context and the metadata has no
// traceparent, the metadata is not read and that span is the parent.
// Headers that do not parse are ignored, and the span then starts a new trace.
//
// The topic is the original topic of the delivery (wire.DeliveryOf), so
// a retried or reprocessed message is recorded under the topic it was first
// consumed from. The span carries messaging.system, messaging.destination.name,
// messaging.operation.type and messaging.operation.name, messaging.message.id
// (the message UUID), messaging.consumer.group.name (when configured),
// messaging.destination.partition.id and messaging.kafka.offset (when known),
// messaging.kafka.message.key (when the key is valid UTF-8),
// messaging.message.conversation_id (the correlation ID, when there is one),
// messaging.client.id, server.address and server.port (when configured),
// and the handler ID, retry count and delivery source (HandlerIDKey,
// RetryCountKey, DeliverySourceKey). The attributes a sampler may look at
// (system, destination, operation, consumer group) are given when the span
// starts; the others are added only when the span records. String values
// read from headers are made valid UTF-8 (invalid bytes become U+FFFD), as
// exporters reject invalid strings.
//
// The handler sees the span in msg.Context(). An error it returns is recorded
// on the span, whose status becomes Error; a panic is recorded the same way and
// then continues. The trace context is also written into the metadata of
// each message the handler returns, unless it has a traceparent already or is
// the incoming message itself.
//
// With a no-op tracer provider (go.opentelemetry.io/otel/trace/noop) no span
// is started, but the trace context and baggage are still extracted into the
// message context and written into the returned messages, so they keep
// flowing to the records published while handling the message.
//
// The traceparent (with its tracestate) and baggage headers that the
// propagator does not write (an empty propagator, or the global one before
// any is set) are kept in the message context as they came, and copied
// verbatim onto the returned messages and the records StartSend writes in
// that context, when these carry none: a service that does not trace does not
// cut the trace. A nil Tracer returns h unchanged.
func (t *Tracer) Middleware(h message.HandlerFunc) message.HandlerFunc {
	if t == nil {
		return h
	}
	if !t.noop {
		return func(msg *message.Message) ([]*message.Message, error) {
			return t.process(t.parentContext(msg), msg, h)
		}
	}
	// Without spans, a closure of its own: its frame, live while the
	// handler runs, holds only what propagating needs, and the outputs are
	// passed to injectInto by address, which keeps the frame's room for the
	// arguments of its calls small.
	p := &propagating{t: t, h: h} // one pointer in the closure, one slot in its frame
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := p.t.parentContext(msg)
		msg.SetContext(ctx)
		out, err := p.h(msg)
		if len(out) > 0 {
			p.t.injectInto(&ctx, msg, &out)
		}
		return out, err
	}
}

// propagating is what the middleware without spans holds.
type propagating struct {
	t *Tracer
	h message.HandlerFunc
}

// injectInto is injectOutputs for the middleware without spans.
//
//nolint:gocritic // ptrToRefParam: by address on purpose, to keep the caller's frame small.
//go:noinline
func (t *Tracer) injectInto(ctx *context.Context, in *message.Message, out *[]*message.Message) {
	t.injectOutputs(*ctx, in, *out)
}

// parentContext returns msg's context with the trace context and baggage
// extracted from its metadata. The tracer extracts only when the metadata
// holds one of the propagator's fields: without them there is nothing to
// extract, and a message that carries no trace context costs a map lookup
// per field.
//
//go:noinline
func (t *Tracer) parentContext(msg *message.Message) context.Context {
	ctx := msg.Context()
	if t.carries(msg.Metadata) {
		ctx = t.prop.Extract(ctx, MetadataCarrier(msg.Metadata))
	}
	return t.withCarried(ctx, msg.Metadata)
}

// carries reports whether md holds a field of the propagator.
func (t *Tracer) carries(md message.Metadata) bool {
	for _, f := range t.propFields().names {
		if _, ok := md[f]; ok {
			return true
		}
	}
	return false
}

// process runs h inside a "process {topic}" span whose parent is in ctx.
//
// It, parentContext and processAttributes are functions of their own to keep
// the frame of the middleware small: Watermill runs each message in a new
// goroutine, and every byte of the middleware frames that are live while the
// handler runs counts towards the stack that goroutine must grow, by copying,
// on every message.
func (t *Tracer) process(ctx context.Context, msg *message.Message, h message.HandlerFunc) (out []*message.Message, err error) {
	d := wire.DeliveryOf(msg)
	start := t.processStart(d.Topic)
	ctx, span := t.tracer.Start(ctx, start.name, start.opts...)
	if span.IsRecording() {
		processAttributes(span, msg, &d)
	}
	defer func() {
		if r := recover(); r != nil {
			markPanic(span, r)
			span.End()
			panic(r)
		}
		MarkFailed(span, err)
		span.End()
	}()
	msg.SetContext(ctx)
	out, err = h(msg)
	t.injectOutputs(ctx, msg, out)
	return out, err
}

// processAttributes sets the attributes of a recording process span that a
// sampler does not need, so they are built only for spans that record.
func processAttributes(span trace.Span, msg *message.Message, d *wire.Delivery) {
	var buf [8]attribute.KeyValue
	attrs := append(buf[:0],
		semconv.MessagingMessageID(strings.ToValidUTF8(msg.UUID, "\uFFFD")),
		HandlerIDKey.String(strings.ToValidUTF8(d.HandlerID, "\uFFFD")),
		RetryCountKey.Int(d.RetryCount),
		DeliverySourceKey.String(d.Source.String()),
	)
	if d.HasOffset {
		attrs = append(attrs,
			semconv.MessagingDestinationPartitionID(strconv.FormatInt(int64(d.Partition), 10)),
			semconv.MessagingKafkaOffsetKey.Int64(d.Offset),
		)
	}
	if d.Key != nil && utf8.Valid(d.Key) {
		attrs = append(attrs, semconv.MessagingKafkaMessageKey(string(d.Key)))
	}
	if id := correlation.FromMessage(msg); id != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(strings.ToValidUTF8(id, "\uFFFD")))
	}
	span.SetAttributes(attrs...)
}

// injectOutputs writes the trace context of ctx into the messages a handler
// returned, except the incoming one and those that carry a traceparent.
func (t *Tracer) injectOutputs(ctx context.Context, in *message.Message, out []*message.Message) {
	for _, m := range out {
		if m == nil || m == in || m.Metadata[headerTraceparent] != "" {
			continue
		}
		if m.Metadata == nil {
			m.Metadata = message.Metadata{}
		}
		t.Inject(ctx, m.Metadata)
		carryMetadata(ctx, m.Metadata)
	}
}

// markPanic records a recovered panic on span, with the stack, and sets its
// status to Error.
func markPanic(span trace.Span, r any) {
	err, ok := r.(error)
	if !ok {
		err = fmt.Errorf("%v", r)
	}
	err = fmt.Errorf("panic: %w", err)
	span.RecordError(err, trace.WithStackTrace(true))
	span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
	span.SetStatus(codes.Error, err.Error())
}
