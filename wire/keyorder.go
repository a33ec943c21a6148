package wire

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// KeyParker keeps the order of a key's records across the hand-offs of a
// handler whose retry policy asks for it (delayedretry.Policy.KeepKeyOrder).
// The retry and DLQ middlewares call it before they hand a failed message
// off; the kafkaevents Stack implements it.
type KeyParker interface {
	// Park parks the key of msg, delivered as d, behind msg, durably, before
	// msg is handed to a retry lane (dead false) or to the DLQ (dead true),
	// so that the later records of its key wait until msg is handled. It
	// says what became of the key: "held" (it waits behind msg),
	// "released" (a dead-lettered record whose handler's policy lets its
	// key go on) or "" (the handler keeps no key order, or msg has no key
	// or no position). An error means msg is not to be handed off: the
	// middleware returns an error wrapping ErrHandoff, and msg is
	// delivered again.
	Park(ctx context.Context, msg *message.Message, d *Delivery, dead bool) (string, error)
}
