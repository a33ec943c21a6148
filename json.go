package kafkaevents

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/wire"
)

// JSON adapts a typed handler to Watermill: the payload is decoded into a T
// with encoding/json and passed with the message context (which carries the
// correlation ID, the trace and the delivery: wire.DeliveryFromContext gives
// the attempt and the source). A payload that does not decode fails with a
// wire.Undecodable error: it is not retried and goes to the DLQ with
// reason undecodable. The error says whether the payload is not JSON at all
// (quoting its first bytes) or JSON of another shape than T. Errors of fn are
// returned as they are (wrap them with wire.Permanent to skip retries).
func JSON[T any](fn func(ctx context.Context, v T) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var v T
		if err := json.Unmarshal(msg.Payload, &v); err != nil {
			return wire.Undecodable(decodeError(msg.Payload, v, err))
		}
		return fn(msg.Context(), v)
	}
}

// payloadQuote bounds the bytes of a payload quoted in a decode error.
const payloadQuote = 32

// decodeError describes why payload did not decode into a v.
func decodeError(payload []byte, v any, err error) error {
	switch {
	case json.Valid(payload):
		return fmt.Errorf("decode %T: %w", v, err)
	case len(payload) == 0:
		return fmt.Errorf("decode %T: the payload is empty, not JSON: %w", v, err)
	}
	head, more := payload, ""
	if len(head) > payloadQuote {
		head, more = head[:payloadQuote], "..."
	}
	return fmt.Errorf("decode %T: the payload is not JSON (it starts %q%s): %w", v, head, more, err)
}
