package tracing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/wire"
)

// RetrySpan describes the scheduling of a retry, for StartRetry.
type RetrySpan struct {
	// HandlerID is the handler that failed and will get the retry.
	HandlerID string
	// Topic is the original topic of the message.
	Topic string
	// Destination is the retry topic the retry record is written to.
	Destination string
	// RetryCount is the attempt being scheduled: 1 for the first retry.
	RetryCount int
	// Delay is how long the retry waits before it is delivered.
	Delay time.Duration
}

// StartRetry starts a "retry {topic}" span (topic: the original topic), kind
// Internal, as a child of the span in ctx, around the publishing of a retry
// record. It carries kafkaevents.operation=retry, the handler ID, the retry
// count, the delay in seconds (RetryDelayKey), the original topic
// (OriginalTopicKey) and messaging.destination.name (the retry topic,
// s.Destination, when given). The caller ends the span, after MarkFailed when the retry record
// could not be published.
//
// A nil Tracer, or one whose provider never records, returns ctx and a span
// that records nothing (its End does nothing) carrying ctx's span context,
// without building the span's name and attributes.
func (t *Tracer) StartRetry(ctx context.Context, s RetrySpan) (context.Context, trace.Span) {
	if t == nil || t.noop {
		return ctx, inert(ctx)
	}
	attrs := []attribute.KeyValue{
		attrRetry,
		HandlerIDKey.String(s.HandlerID),
		RetryCountKey.Int(s.RetryCount),
		RetryDelayKey.Float64(s.Delay.Seconds()),
		OriginalTopicKey.String(s.Topic),
	}
	if s.Destination != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(s.Destination))
	}
	return t.tracer.Start(ctx, spanName("retry", s.Topic), kindInternal, trace.WithAttributes(attrs...))
}

// DLQSpan describes the storing of a record in the DLQ, for StartDLQ.
type DLQSpan struct {
	// HandlerID is the handler that failed.
	HandlerID string
	// Topic is the original topic of the message.
	Topic string
	// Destination is the DLQ topic the record is written to.
	Destination string
	// Reason says why the record goes to the DLQ (a wire.Reason).
	Reason string
	// RetryCount is the number of retries that ran.
	RetryCount int
	// Err is the error that sent the record to the DLQ; nil when unknown.
	Err error
}

// StartDLQ starts a "dlq_store {topic}" span (topic: the original topic),
// kind Internal, as a child of the span in ctx, around the publishing of a
// DLQ record. It carries kafkaevents.operation=dlq_store, the reason
// (DLQReasonKey), the retry count, the handler ID, the original topic
// (OriginalTopicKey) and messaging.destination.name (the DLQ topic,
// s.Destination, when given). s.Err, when
// not nil, is recorded as an exception event but does not set the status:
// storing the record is what this span does, and it succeeds when the record
// is stored. The caller ends the span, after MarkFailed when the DLQ record
// could not be published.
//
// A nil Tracer, or one whose provider never records, returns ctx and a span
// that records nothing (its End does nothing) carrying ctx's span context.
func (t *Tracer) StartDLQ(ctx context.Context, s DLQSpan) (context.Context, trace.Span) {
	if t == nil || t.noop {
		return ctx, inert(ctx)
	}
	attrs := []attribute.KeyValue{
		attrDLQStore,
		DLQReasonKey.String(s.Reason),
		RetryCountKey.Int(s.RetryCount),
		HandlerIDKey.String(s.HandlerID),
		OriginalTopicKey.String(s.Topic),
	}
	if s.Destination != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(s.Destination))
	}
	ctx, span := t.tracer.Start(ctx, spanName("dlq_store", s.Topic), kindInternal, trace.WithAttributes(attrs...))
	if s.Err != nil {
		span.RecordError(s.Err)
	}
	return ctx, span
}

// InSpan runs fn in a new span named name, a child of the span in ctx, with
// opts (kind Internal unless opts say otherwise), and returns fn's error. fn
// receives the context holding the span. An error from fn is recorded on the
// span and sets its status to Error (see MarkFailed). A panic in fn is
// recorded the same way, with the stack, the span is ended, and the panic
// continues with the same value.
//
// A nil Tracer runs fn(ctx) without a span.
func (t *Tracer) InSpan(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...trace.SpanStartOption) (err error) {
	if t == nil {
		return fn(ctx)
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	defer func() {
		if r := recover(); r != nil {
			markPanic(span, r)
			span.End()
			panic(r)
		}
		MarkFailed(span, err)
		span.End()
	}()
	return fn(ctx)
}

// MarkFailed records err on span as an exception event, sets error.type (see
// ErrorType) and sets the span status to Error with err's text. A nil err or
// a nil span is a no-op.
func MarkFailed(span trace.Span, err error) {
	if err == nil || span == nil {
		return
	}
	span.RecordError(err)
	span.SetAttributes(semconv.ErrorTypeKey.String(ErrorType(err)))
	span.SetStatus(codes.Error, err.Error())
}

// ErrorType is the error.type of a failed span, a value of low cardinality:
// "panic" for a recovered panic (wire.PanicError), the DLQ reason for
// an error that carries one (such as "permanent" or "undecodable"), the Go
// type of err when it is a type of its own, and "_OTHER" for the plain
// errors of errors.New and fmt.Errorf.
func ErrorType(err error) string {
	if _, ok := errors.AsType[*wire.PanicError](err); ok {
		return "panic"
	}
	if r, ok := wire.ReasonOf(err); ok {
		return string(r)
	}
	switch t := fmt.Sprintf("%T", err); t {
	case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError", "*wire.Failure":
		return "_OTHER"
	default:
		return t
	}
}

// inert returns a span that records nothing, whose End does nothing, and that
// carries the span context in ctx (so code that reads it still finds the
// trace).
func inert(ctx context.Context) trace.Span {
	sc := trace.SpanContextFromContext(ctx)
	return trace.SpanFromContext(trace.ContextWithSpanContext(context.Background(), sc))
}
