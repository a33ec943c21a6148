package kafkaevents

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
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
	d := s.subscriber
	grow := &growstack.Growth{}
	return func(msg *message.Message) ([]*message.Message, error) {
		if d.Draining() && d.Refuse(msg) {
			// Refused unhandled: nacked while draining (the router's Ack
			// after it does nothing), or to be acknowledged unmarked once
			// its claim is revoked.
			return nil, nil
		}
		correlation.Ensure(msg)
		if s.unknownTopics.Load() > 0 {
			s.learnTopic(msg)
		}
		var mark uintptr
		mark = grow.Prepare(&mark)
		out, err := h(msg)
		grow.Observe(&mark)
		if len(out) > 0 {
			stampOutputs(msg, out)
		}
		return out, err
	}
}

// stampOutputs gives the messages a handler returned the correlation ID of
// the message it handled (its context's, which Ensure set, or its header's)
// when they have none. A function of its own, so that the frame of enter,
// live while the handler runs, does not keep the ID.
//
//go:noinline
func stampOutputs(msg *message.Message, out []*message.Message) {
	if id := correlation.FromMessage(msg); id != "" {
		correlation.Stamp(out, id)
	}
}

// measure records the handler duration by outcome and marks the process
// span failed when the handler fails, even when the retry or DLQ middleware
// then hands the message off successfully.
func (s *Stack) measure(h message.HandlerFunc) message.HandlerFunc {
	// The observers of this router handler, by handler ID and outcome, so
	// that a message does not pay for the label lookup of the histogram.
	obs := newObservers(s.durations)
	return func(msg *message.Message) ([]*message.Message, error) {
		start := monotonic()
		out, err := h(msg)
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
