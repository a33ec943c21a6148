package kafkaevents

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/consume"
	"github.com/torix/kafkaevents/internal/growstack"
)

// The stack's own two middlewares: enter, the outermost, and measure, the
// metrics middleware; Middlewares gives their place in the chain. Their
// frames are live while the handler runs, on a goroutine Watermill starts
// per message whose stack grows by copying, so they are kept small: what
// they do before or after the handler is in functions of their own.

// enter is the stack's outermost middleware: it refuses the messages of a
// draining subscription or a revoked claim (while there is none that costs
// two atomic loads),
// grows the goroutine's stack for handlers that need it (internal/growstack)
// and does the work of correlation.Middleware, all in one frame.
func (s *Stack) enter(h message.HandlerFunc) message.HandlerFunc {
	// One pointer in the closure, so that its frame does not keep each of
	// these in a slot of its own.
	e := &entry{s: s, d: s.subscriber, h: h}
	return func(msg *message.Message) ([]*message.Message, error) {
		if e.d.Draining() && e.d.Refuse(msg) {
			// Refused unhandled: nacked while draining (the router's Ack
			// after it does nothing), or to be acknowledged unmarked once
			// its claim is revoked.
			return nil, nil
		}
		e.s.admit(msg)
		if e.s.keys.Wants(msg) {
			return e.viaKeyOrder(msg)
		}
		var mark uintptr
		mark = e.grow.Prepare(&mark)
		out, err := e.h(msg)
		e.grow.Observe(&mark)
		if len(out) > 0 {
			stampOutputs(msg, &out)
		}
		return out, err
	}
}

// entry is what enter's closure uses for one router handler.
type entry struct {
	s    *Stack
	d    *consume.Subscriber
	h    message.HandlerFunc
	grow growstack.Growth
}

// admit puts the correlation ID of msg into its context and learns the
// topic of a handler added to the router directly; a function of its own so
// that the frame of enter, live while the handler runs, stays small.
//
//go:noinline
func (s *Stack) admit(msg *message.Message) {
	correlation.Ensure(msg)
	if s.unknownTopics.Load() > 0 {
		s.learnTopic(msg)
	}
}

// stampOutputs gives the messages a handler returned the correlation ID of
// the message it handled (its context's, which Ensure set, or its header's)
// when they have none. A function of its own, so that the frame of enter,
// live while the handler runs, does not keep the ID; the outputs are passed
// by address, which keeps that frame's room for call arguments small.
//
//go:noinline
func stampOutputs(msg *message.Message, out *[]*message.Message) {
	if id := correlation.FromMessage(msg); id != "" {
		correlation.Stamp(*out, id)
	}
}

// measure records the handler duration by outcome and marks the process
// span failed when the handler fails, even when the retry or DLQ middleware
// then hands the message off successfully.
func (s *Stack) measure(h message.HandlerFunc) message.HandlerFunc {
	// The observers of this router handler, by handler ID and outcome, so
	// that a message does not pay for the label lookup of the histogram.
	obs := newObservers(s.durations)
	obs.h = h // one pointer in the closure (see enter)
	return func(msg *message.Message) ([]*message.Message, error) {
		start := monotonic()
		out, err := obs.h(msg)
		obs.observe(msg, monotonic()-start, err)
		return out, err
	}
}

// monotonicBase is the origin of monotonic.
var monotonicBase = time.Now()

// monotonic returns the time on the monotonic clock: an integer, so that
// the frame of measure does not hold a time.Time while the handler runs.
//
//go:noinline
func monotonic() time.Duration { return time.Since(monotonicBase) }
