package redeliver

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/wire"
)

// Record is a record on its way back to its handler.
type Record struct {
	// UUID is the Watermill message UUID (the record's
	// _watermill_message_uuid header).
	UUID string
	// Payload is the record's value.
	Payload []byte
	// Metadata becomes the message's metadata as it is, not copied; nil
	// means none. Its x-correlation-id, if any, is also put in the
	// message's context.
	Metadata message.Metadata
	// Delivery tells the handler where the record comes from; its
	// HandlerID names the handler.
	Delivery wire.Delivery
}

// Message returns the message that hands r to its handler. Its context is
// derived from parent and carries r.Delivery (wire.WithDelivery) and the
// correlation ID of r.Metadata (correlation.WithID), when there is one.
func (r Record) Message(parent context.Context) *message.Message {
	msg := message.NewMessage(r.UUID, r.Payload)
	if r.Metadata != nil {
		msg.Metadata = r.Metadata
	}
	ctx := wire.WithDelivery(parent, r.Delivery)
	if id := msg.Metadata.Get(wire.HeaderCorrelationID); id != "" {
		ctx = correlation.WithID(ctx, id)
	}
	msg.SetContext(ctx)
	return msg
}
