package tracing

import (
	"context"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/torix/kafkaevents/wire"
)

// StartSend starts a "send {topic}" span, kind Producer, as a child of the
// span in ctx, and writes the new span's context (traceparent, tracestate,
// baggage, or whatever the configured propagator writes) into rec.Headers,
// replacing the headers of those names that rec already has (see
// InjectHeaders). When ctx is the context of a message handled by the
// Middleware and the propagator writes no traceparent (or no baggage), the
// handled record's traceparent and tracestate (or baggage) are copied onto
// rec verbatim. The span carries messaging.system,
// messaging.destination.name, messaging.operation.type and
// messaging.operation.name, messaging.kafka.message.key (when rec.Key encodes
// to valid UTF-8; a key that is neither a sarama.StringEncoder nor a
// sarama.ByteEncoder is encoded once more to read it) and
// messaging.message.conversation_id (the
// x-correlation-id header, when rec has one).
//
// It returns the context holding the span and a function that ends it, to be
// called once with the outcome of the send: on success (err == nil) it records
// messaging.destination.partition.id and messaging.kafka.offset; otherwise it
// records err and sets the status to Error.
//
// A nil Tracer, or a nil rec, returns ctx and a function that does nothing;
// rec.Headers are then left as they are.
func (t *Tracer) StartSend(ctx context.Context, rec *sarama.ProducerMessage) (context.Context, func(partition int32, offset int64, err error)) {
	if t == nil || rec == nil {
		return ctx, endNothing
	}
	start := t.sendStart(rec.Topic)
	ctx, span := t.tracer.Start(ctx, start.name, start.opts...)
	if span.IsRecording() {
		var buf [2]attribute.KeyValue
		attrs := buf[:0]
		if key, ok := recordKey(rec.Key); ok {
			attrs = append(attrs, semconv.MessagingKafkaMessageKey(key))
		}
		if id := (HeadersCarrier{Headers: &rec.Headers}).Get(wire.HeaderCorrelationID); id != "" {
			attrs = append(attrs, semconv.MessagingMessageConversationID(strings.ToValidUTF8(id, "\uFFFD")))
		}
		if len(attrs) > 0 {
			span.SetAttributes(attrs...)
		}
	}
	rec.Headers = carryHeaders(ctx, t.InjectHeaders(ctx, rec.Headers))
	if !span.IsRecording() {
		// Nothing to record on the outcome: spare the closure, an
		// allocation per record.
		return ctx, endNothing
	}
	return ctx, func(partition int32, offset int64, err error) {
		if err != nil {
			MarkFailed(span, err)
		} else {
			span.SetAttributes(
				semconv.MessagingDestinationPartitionID(strconv.FormatInt(int64(partition), 10)),
				semconv.MessagingKafkaOffsetKey.Int64(offset),
			)
		}
		span.End()
	}
}

func endNothing(int32, int64, error) {}

// recordKey returns the key of a record as a string, when it has one that is
// valid UTF-8. Keys other than sarama.StringEncoder and sarama.ByteEncoder are
// encoded to read them; one that fails to encode is treated as absent.
func recordKey(k sarama.Encoder) (string, bool) {
	var b []byte
	switch k := k.(type) {
	case nil:
		return "", false
	case sarama.StringEncoder:
		return string(k), utf8.ValidString(string(k))
	case sarama.ByteEncoder:
		b = k
	default:
		var err error
		if b, err = k.Encode(); err != nil {
			return "", false
		}
	}
	if b == nil || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}
