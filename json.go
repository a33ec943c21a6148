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
// correlation ID and the trace). A payload that does not decode fails with a
// wire.Undecodable error: it is not retried and goes to the DLQ with
// reason undecodable. Errors of fn are returned as they are (wrap them with
// wire.Permanent to skip retries).
func JSON[T any](fn func(ctx context.Context, v T) error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var v T
		if err := json.Unmarshal(msg.Payload, &v); err != nil {
			return wire.Undecodable(fmt.Errorf("decode %T: %w", v, err))
		}
		return fn(msg.Context(), v)
	}
}
