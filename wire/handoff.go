package wire

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Backoff of a held record sent again: the first wait and the longest.
const (
	resendMinBackoff = 100 * time.Millisecond
	resendMaxBackoff = 5 * time.Second
)

// SendHeld hands rec, the record that replaces msg (its retry or DLQ
// record), to the producer without waiting for the broker, when sender is an
// AsyncSender and holder holds msg's offset; it then returns true and msg
// may be acknowledged at once. Otherwise it sends nothing and returns false:
// the caller sends rec and waits.
//
// Once the broker acknowledged rec, acked is called with the record as sent
// (its partition and offset set) and the hold released.
// When the broker refuses it, refused is called with the error and rec is
// sent again, waiting for each answer, with backoff from 100ms to 5s, until
// it is acknowledged (acked, release) or the hold is lost (the partition
// was revoked: msg will be delivered again, and gaveUp is called). The
// callbacks run on other goroutines and must not block.
func SendHeld(ctx context.Context, sender Sender, holder OffsetHolder, msg *message.Message, rec *sarama.ProducerMessage,
	acked func(*sarama.ProducerMessage), refused func(error), gaveUp func(),
) bool {
	async, ok := sender.(AsyncSender)
	if !ok || holder == nil {
		return false
	}
	hold := holder.Hold(msg)
	if hold == nil {
		return false
	}
	select {
	case <-hold.Lost():
		// The partition was revoked (a holder of exactly-once hand-offs
		// says so with a hold lost already): msg will be delivered again.
		gaveUp()
		return true
	default:
	}
	// Kept to send again: the producer appends its own headers to rec.
	again := copyRecord(rec)
	sendHeld(ctx, async, rec, hold, func(err error) {
		if err == nil {
			acked(rec)
			hold.Release()
			return
		}
		if errors.Is(err, ErrHoldLost) {
			gaveUp()
			return
		}
		refused(err)
		go resend(context.WithoutCancel(ctx), async, again, hold, acked, refused, gaveUp)
	})
	return true
}

// sendHeld sends rec, which replaces the record hold holds, with sender's
// SendHeldRecord when it is a HeldSender, else with SendRecordAsync.
func sendHeld(ctx context.Context, sender AsyncSender, rec *sarama.ProducerMessage, hold OffsetHold, done func(error)) {
	if hs, ok := sender.(HeldSender); ok {
		hs.SendHeldRecord(ctx, rec, hold, done)
		return
	}
	sender.SendRecordAsync(ctx, rec, done)
}

// resend is SendHeld's loop for a refused record.
func resend(ctx context.Context, sender AsyncSender, rec *sarama.ProducerMessage, hold OffsetHold, acked func(*sarama.ProducerMessage), refused func(error), gaveUp func()) {
	backoff := resendMinBackoff
	for {
		t := time.NewTimer(backoff)
		select {
		case <-hold.Lost():
			t.Stop()
			gaveUp()
			return
		case <-t.C:
		}
		sent := copyRecord(rec)
		answer := make(chan error, 1)
		sendHeld(ctx, sender, sent, hold, func(err error) { answer <- err })
		err := <-answer
		if errors.Is(err, ErrHoldLost) {
			gaveUp()
			return
		}
		if err == nil {
			acked(sent)
			hold.Release()
			return
		}
		refused(err)
		backoff = min(2*backoff, resendMaxBackoff)
	}
}

// copyRecord returns a copy of rec whose headers the producer can append to
// without changing rec's.
func copyRecord(rec *sarama.ProducerMessage) *sarama.ProducerMessage {
	c := *rec
	c.Headers = slices.Clone(rec.Headers)
	return &c
}
