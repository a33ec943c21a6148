package kafkaevents

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// enter is the stack's outermost middleware: it refuses the messages of a
// draining subscription (while none drains that costs one atomic load),
// grows the goroutine's stack for handlers that need it (stackGrowth) and
// does the work of correlation.Middleware, all in one frame.
func (s *Stack) enter(h message.HandlerFunc) message.HandlerFunc {
	d := s.subscriber
	grow := &stackGrowth{}
	return func(msg *message.Message) ([]*message.Message, error) {
		if d.draining.Load() > 0 && d.refuse(msg) {
			return nil, nil // nacked: the router's Ack after it does nothing
		}
		correlation.Ensure(msg)
		if s.unknownTopics.Load() > 0 {
			s.learnTopic(msg)
		}
		var mark uintptr
		mark = grow.prepare(&mark)
		out, err := h(msg)
		grow.observe(&mark)
		if len(out) > 0 {
			stampOutputs(msg, out)
		}
		return out, err
	}
}

// learnTopic records the topic of a handler added directly to the router
// (whose topic the router does not reveal) from its first delivery, for
// Handlers and the lag.
//
//go:noinline
func (s *Stack) learnTopic(msg *message.Message) {
	ctx := msg.Context()
	name, topic := message.HandlerNameFromCtx(ctx), message.SubscribeTopicFromCtx(ctx)
	if topic == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.handlers[name]; ok && h.Pattern == "" {
		h.Pattern = topic
		s.handlers[name] = h
		s.unknownTopics.Add(-1)
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

// observers caches the children of a HistogramVec by outcome and handler
// ID. A router handler sees one handler ID or a few, so the maps are copied
// on the rare miss and read without a lock.
type observers struct {
	vec    *prometheus.HistogramVec
	mu     sync.Mutex
	byID   [2]atomic.Pointer[map[string]prometheus.Observer] // success, error
	labels [2]string
}

func newObservers(vec *prometheus.HistogramVec) *observers {
	return &observers{vec: vec, labels: [2]string{"success", "error"}}
}

// observe is measure's work after the handler, in a function of its own so
// that the frame of measure, live while the handler runs, stays small:
// Watermill runs each message in a new goroutine whose stack grows by
// copying.
func (o *observers) observe(msg *message.Message, elapsed time.Duration, err error) {
	outcome := 0
	if err != nil {
		outcome = 1
		markFailed(msg, err)
	}
	obs := o.of(outcome, wire.HandlerIDOf(msg))
	if sampled(msg) {
		observeWithTrace(obs, msg, elapsed)
		return
	}
	obs.Observe(elapsed.Seconds())
}

// sampled reports whether msg's span is sampled; the span context stays out
// of the frame of observe.
//
//go:noinline
func sampled(msg *message.Message) bool {
	return trace.SpanContextFromContext(msg.Context()).IsSampled()
}

// markFailed marks the process span of msg failed, out of the frame of
// observe.
//
//go:noinline
func markFailed(msg *message.Message, err error) {
	tracing.MarkFailed(trace.SpanFromContext(msg.Context()), err)
}

// observeWithTrace observes elapsed with the trace ID of msg's sampled span
// as an exemplar. A function of its own, so that the frame of observe, which
// runs for every message, stays small.
//
//go:noinline
func observeWithTrace(obs prometheus.Observer, msg *message.Message, elapsed time.Duration) {
	if eo, ok := obs.(prometheus.ExemplarObserver); ok {
		sc := trace.SpanContextFromContext(msg.Context())
		eo.ObserveWithExemplar(elapsed.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
		return
	}
	obs.Observe(elapsed.Seconds())
}

// expectMetrics declares a registered handler (and the topic it consumes,
// when known) to the metrics, so that their series exist from the start, at
// 0, and that label values read from records are checked against them.
func (s *Stack) expectMetrics(handlerID, topic string) {
	s.retryStats.Expect(handlerID)
	if topic != "" {
		s.dlqStats.ExpectTopic(topic)
	}
	if s.durations != nil {
		s.durations.WithLabelValues(handlerID, "success")
		s.durations.WithLabelValues(handlerID, "error")
	}
}

func (o *observers) of(outcome int, handlerID string) prometheus.Observer {
	if m := o.byID[outcome].Load(); m != nil {
		if h, ok := (*m)[handlerID]; ok {
			return h
		}
	}
	return o.add(outcome, handlerID)
}

func (o *observers) add(outcome int, handlerID string) prometheus.Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var next map[string]prometheus.Observer
	if m := o.byID[outcome].Load(); m != nil {
		if h, ok := (*m)[handlerID]; ok {
			return h
		}
		next = maps.Clone(*m)
	} else {
		next = map[string]prometheus.Observer{}
	}
	h := o.vec.WithLabelValues(handlerID, o.labels[outcome])
	next[handlerID] = h
	o.byID[outcome].Store(&next)
	return h
}
