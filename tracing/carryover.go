package tracing

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

const headerBaggage = "baggage"

// carried is the trace context of the record being handled, as its headers
// held it, for the propagator that does not write it (no propagator set: the
// service does not trace, yet sits in a traced pipeline).
type carried struct {
	traceparent, tracestate, baggage string
}

type carriedKey struct{}

// withCarried returns ctx holding the traceparent, tracestate and baggage of
// md that the propagator would not write onto the records published while
// the message is handled, or ctx itself when there are none.
func (t *Tracer) withCarried(ctx context.Context, md message.Metadata) context.Context {
	f := t.propFields()
	var c carried
	if !f.traceparent {
		c.traceparent = md[headerTraceparent]
		if c.traceparent != "" {
			c.tracestate = md[headerTracestate]
		}
	}
	if !f.baggage {
		c.baggage = md[headerBaggage]
	}
	if c == (carried{}) {
		return ctx
	}
	return context.WithValue(ctx, carriedKey{}, &c)
}

// carryHeaders adds to headers the carried trace context of ctx that they
// lack: traceparent with its tracestate when there is no traceparent, and
// baggage when there is none. A traceparent the propagator wrote (a span of
// this service) is never replaced, nor given another span's tracestate.
func carryHeaders(ctx context.Context, headers []sarama.RecordHeader) []sarama.RecordHeader {
	c, _ := ctx.Value(carriedKey{}).(*carried)
	if c == nil {
		return headers
	}
	hc := HeadersCarrier{Headers: &headers}
	if c.traceparent != "" && hc.Get(headerTraceparent) == "" {
		hc.Set(headerTraceparent, c.traceparent)
		if c.tracestate != "" {
			hc.Set(headerTracestate, c.tracestate)
		}
	}
	if c.baggage != "" && hc.Get(headerBaggage) == "" {
		hc.Set(headerBaggage, c.baggage)
	}
	return headers
}

// carryMetadata is carryHeaders for the metadata of a message the handler
// returned.
func carryMetadata(ctx context.Context, md message.Metadata) {
	c, _ := ctx.Value(carriedKey{}).(*carried)
	if c == nil {
		return
	}
	if c.traceparent != "" && md[headerTraceparent] == "" {
		md[headerTraceparent] = c.traceparent
		if c.tracestate != "" {
			md[headerTracestate] = c.tracestate
		}
	}
	if c.baggage != "" && md[headerBaggage] == "" {
		md[headerBaggage] = c.baggage
	}
}
