package kafkaevents

import (
	"maps"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/delayedretry"
)

// HandlerInfo describes a registered handler, as GET /kafka/handlers lists it.
type HandlerInfo struct {
	// ID is the handler ID (the Watermill handler name).
	ID string `json:"id"`
	// Pattern is the topic it consumes. For a handler added directly to the
	// router, whose topic the router does not reveal, it is learnt from the
	// handler's first delivery and empty until then.
	Pattern string `json:"pattern"`
	// Method is an optional description of the function behind it.
	Method string `json:"method,omitempty"`
	// Options are its retry and DLQ settings.
	Options HandlerOptions `json:"options"`
}

// HandlerOptions are a handler's effective retry and DLQ settings.
type HandlerOptions struct {
	Retry RetryOptions `json:"retry"`
	// Concurrency is how many records of a partition the handler may
	// handle at once; Ordering is "key" or "none" (see WithOrdering).
	Concurrency int    `json:"concurrency,omitempty"`
	Ordering    string `json:"ordering,omitempty"`
	DLQ         bool   `json:"dlq"`
}

// RetryOptions are a handler's effective retry policy, in JSON-friendly units.
type RetryOptions struct {
	Enabled     bool    `json:"enabled"`
	Attempts    int     `json:"attempts"`
	BaseDelayMs int64   `json:"baseDelayMs"`
	MaxDelayMs  int64   `json:"maxDelayMs"`
	Backoff     string  `json:"backoff"`
	Jitter      float64 `json:"jitter"`
}

// Handlers lists the registered handlers, sorted by ID.
func (s *Stack) Handlers() []HandlerInfo {
	s.mu.Lock()
	out := slices.AppendSeq(make([]HandlerInfo, 0, len(s.handlers)), maps.Values(s.handlers))
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b HandlerInfo) int { return strings.Compare(a.ID, b.ID) })
	for i := range out {
		out[i].Options = s.handlerOptions(out[i].ID)
	}
	return out
}

func (s *Stack) handlerOptions(id string) HandlerOptions {
	o := HandlerOptions{DLQ: s.queue != nil}
	for _, set := range s.subscriber.Handlers() {
		if set.HandlerID == id {
			o.Concurrency, o.Ordering = set.Concurrency, orderingOf(set).String()
		}
	}
	if s.retrier == nil {
		return o
	}
	p := s.retrier.PolicyFor(id)
	o.Retry = RetryOptions{
		Enabled: !p.Disabled, Attempts: p.Attempts, BaseDelayMs: p.BaseDelay.Milliseconds(),
		MaxDelayMs: p.MaxDelay.Milliseconds(), Backoff: string(p.Backoff), Jitter: p.Jitter,
	}
	if o.Retry.Backoff == "" {
		o.Retry.Backoff = string(delayedretry.BackoffExponential)
	}
	return o
}

// topics returns the topics of the registered handlers and whether some
// handler's topic is unknown (added directly to the router).
func (s *Stack) topics() (topics []string, someUnknown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.handlers {
		if p := s.handlers[id].Pattern; p == "" {
			someUnknown = true
		} else if !slices.Contains(topics, p) {
			topics = append(topics, p)
		}
	}
	slices.Sort(topics)
	return topics, someUnknown
}

// learnTopic records the topic of a handler added directly to the router
// (whose topic the router does not reveal) from its first delivery, for
// Handlers and the lag. The entry middleware calls it, out of its frame.
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
