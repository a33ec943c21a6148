// Package tracing records OpenTelemetry spans for the messages kafkaevents
// consumes and produces, and carries the W3C trace context and baggage in
// Kafka record headers.
//
// A Tracer records four kinds of spans:
//
//   - "process {topic}" (kind Consumer), one per delivery, recorded by
//     [Tracer.Middleware]. Its parent is the trace context found in the
//     message's headers (traceparent, tracestate, baggage), else the span
//     already in the message context, else none (a new trace).
//   - "send {topic}" (kind Producer), one per published record, started by
//     [Tracer.StartSend], which also writes the span's context into the
//     record headers.
//   - "retry {topic}" and "dlq_store {topic}" (kind Internal), started by the
//     retry and DLQ middlewares with [Tracer.StartRetry] and
//     [Tracer.StartDLQ] around the hand-off of a failed message.
//
// Spans follow the OpenTelemetry semantic conventions for messaging
// (messaging.system, messaging.destination.name, messaging.operation.type,
// messaging.kafka.offset, ...); the few library-specific attributes
// (kafkaevents.handler_id, kafkaevents.retry_count, ...) are exported as
// attribute keys (HandlerIDKey, RetryCountKey, ...).
//
// The tracer provider and the propagator are injected through [Config]. Left
// nil they default to the OpenTelemetry globals (otel.GetTracerProvider and
// otel.GetTextMapPropagator, which follow a provider or propagator set after
// [New] runs); this package never sets the globals. Only the OpenTelemetry API is used here: install the SDK
// (or not) in the application.
//
// The middleware belongs outside the retry and DLQ middlewares, so that their
// "retry" and "dlq_store" spans, and the "send" spans of the records they
// publish, are children of the "process" span:
//
//	router.AddMiddleware(correlation.Middleware, tracer.Middleware, queue.Middleware, retrier.Middleware)
//
// A nil *Tracer is valid: every method is a no-op that passes the context
// through, the middleware calls the handler directly, and no trace headers
// are written.
package tracing
