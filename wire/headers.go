package wire

// Header names of the wire contract. Every record that kafkaevents publishes
// to a retry topic or to the DLQ carries the original record's headers plus
// the ones below; values are UTF-8 strings.
const (
	// HeaderCorrelationID carries the correlation ID of a message across
	// services, retries and the DLQ.
	HeaderCorrelationID = "x-correlation-id"
	// HeaderOriginalTopic is the topic the record was first consumed from.
	HeaderOriginalTopic = "x-original-topic"
	// HeaderOriginalPartition is the partition of the original record (DLQ only).
	HeaderOriginalPartition = "x-original-partition"
	// HeaderOriginalOffset is the offset of the original record (DLQ only).
	HeaderOriginalOffset = "x-original-offset"
	// HeaderHandlerID names the handler that failed and that a retry or a
	// reprocess is dispatched to.
	HeaderHandlerID = "x-handler-id"
	// HeaderRetryCount is the attempt number of a retry record: 1 for the
	// first retry. On a DLQ record it is the number of retries that ran.
	HeaderRetryCount = "x-retry-count"
	// HeaderRetryAfter is the due time of a retry record, RFC 3339 UTC with
	// milliseconds (see TimeFormat). The record is never delivered earlier.
	HeaderRetryAfter = "x-retry-after"
	// HeaderFirstFailedAt is when the first delivery of the message failed.
	HeaderFirstFailedAt = "x-first-failed-at"
	// HeaderFailedAt is when the latest delivery failed.
	HeaderFailedAt = "x-failed-at"
	// HeaderErrorMessage is the latest error, truncated to MaxErrorMessageLen bytes.
	HeaderErrorMessage = "x-error-message"
	// HeaderDLQStoredAt is when the record was written to the DLQ.
	HeaderDLQStoredAt = "x-dlq-stored-at"
	// HeaderDLQReason says why the record is in the DLQ: one of the Reason values.
	HeaderDLQReason = "x-dlq-reason"
	// HeaderDLQPanicStack is, when the handler's last failure was a panic,
	// the first PanicStackLines lines of its stack (PanicStack), at most
	// MaxErrorMessageLen bytes.
	HeaderDLQPanicStack = "x-dlq-panic-stack"
	// HeaderDLQKeyOrder says, for a handler that keeps key order
	// (delayedretry.Policy.KeepKeyOrder), what became of the record's key:
	// "held" (its later records wait behind it until it is reprocessed or
	// released) or "released" (they went on without it: the key's order is
	// broken).
	HeaderDLQKeyOrder = "x-dlq-key-order"
	// HeaderReprocessCount counts how many times the record was reprocessed
	// from the DLQ.
	HeaderReprocessCount = "x-reprocess-count"
	// HeaderTraceparent is the W3C trace context header.
	HeaderTraceparent = "traceparent"
	// HeaderTracestate is the W3C trace state header.
	HeaderTracestate = "tracestate"
	// HeaderWatermillUUID is where watermill-kafka keeps the message UUID.
	HeaderWatermillUUID = "_watermill_message_uuid"
	// HeaderUnmarshalError marks a message whose record could not be
	// unmarshalled; it is set only by the library's unmarshaler and never
	// published.
	HeaderUnmarshalError = "x-kafkaevents-unmarshal-error"
)

// TimeFormat is the layout of every timestamp header: RFC 3339, UTC, with
// milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// MaxErrorMessageLen bounds HeaderErrorMessage, in bytes.
const MaxErrorMessageLen = 1024

// Reason says why a record went to the DLQ (HeaderDLQReason).
type Reason string

// The DLQ reasons. Exactly one is set on every DLQ record.
const (
	// ReasonRetriesExhausted: every retry attempt failed.
	ReasonRetriesExhausted Reason = "retries-exhausted"
	// ReasonPermanent: the handler returned an error marked Permanent.
	ReasonPermanent Reason = "permanent"
	// ReasonUndecodable: the payload or the record could not be decoded.
	ReasonUndecodable Reason = "undecodable"
	// ReasonRetryDisabled: the handler failed and retries are off for it.
	ReasonRetryDisabled Reason = "retry-disabled"
	// ReasonUnroutable: a retry or reprocess record names an unknown
	// handler, or its retry headers are missing or corrupt.
	ReasonUnroutable Reason = "unroutable"
)

// Reasons lists every Reason, in a stable order.
var Reasons = []Reason{ReasonRetriesExhausted, ReasonPermanent, ReasonUndecodable, ReasonRetryDisabled, ReasonUnroutable}

// Valid reports whether r is one of the defined reasons.
func (r Reason) Valid() bool {
	for _, v := range Reasons {
		if v == r {
			return true
		}
	}
	return false
}

// TruncateError returns s cut to at most MaxErrorMessageLen bytes on a rune
// boundary, with "…" appended when it was cut.
func TruncateError(s string) string {
	if len(s) <= MaxErrorMessageLen {
		return s
	}
	cut := MaxErrorMessageLen - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
