package wire

import (
	"context"
	"errors"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// OffsetHolder lets a hand-off acknowledge a message before its retry record
// is durable, without giving up at-least-once delivery: the consumer keeps
// the message's offset, and every offset after it, out of its commits until
// the hold is released. The kafkaevents Stack's subscriber implements it.
type OffsetHolder interface {
	// Hold holds back the offset of msg and returns the hold, or nil when
	// it cannot: msg did not come from this consumer, its partition is no
	// longer assigned, or too many holds are open already. A nil hold means
	// the caller must wait for its record before it acknowledges msg.
	Hold(msg *message.Message) OffsetHold
}

// OffsetHold is the offset of one acknowledged message held back from the
// consumer group's commits.
type OffsetHold interface {
	// Release lets the offset be committed: the record that replaces the
	// message is durable. Calling it more than once does nothing.
	Release()
	// Lost is closed when releasing can no longer commit the offset: the
	// partition was revoked or the consumer stopped. The message will be
	// delivered again from the last committed offset, by this consumer or
	// another one of the group.
	Lost() <-chan struct{}
}

// AsyncSender is a Sender that can also send without waiting.
type AsyncSender interface {
	Sender
	// SendRecordAsync hands rec to the producer and returns at once; done
	// is called exactly once, from another goroutine, with the broker's
	// answer (nil when the record was acknowledged). done must not block.
	SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error))
}

// ErrHoldLost is what a HeldSender gives a hand-off whose hold was lost
// before the record was written: the partition of the record it replaces
// is no longer this consumer's, and the record will be delivered again, so
// writing its successor would hand it off twice. SendHeld then calls its
// gaveUp.
var ErrHoldLost = errors.New("kafkaevents: the hold of the record was lost before its hand-off was written")

// HeldSender is an AsyncSender that takes the hold of the record a hand-off
// replaces: it commits the offset past the held record together with the
// record that replaces it, in one transaction, so that the hand-off happens
// once whatever the process does (the Stack's exactly-once hand-offs).
type HeldSender interface {
	AsyncSender
	// SendHeldRecord is SendRecordAsync for rec, the record that replaces
	// the one hold holds; done is called once the transaction carrying rec
	// and the offset past the held record committed (nil), or failed. It
	// does not release hold.
	SendHeldRecord(ctx context.Context, rec *sarama.ProducerMessage, hold OffsetHold, done func(error))
}
