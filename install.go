package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/middleware"
)

// Middlewares returns the stack's middlewares in the order Install adds
// them, outermost first:
//
//  1. admission and correlation.Middleware in one frame: while a
//     subscription of the stack's subscriber drains (its router stops, or
//     the stack closes), a message it still hands out is nacked without
//     being handled, so that its offset stays uncommitted; otherwise the
//     correlation ID goes into the context and onto the outputs;
//  2. tracing: extract the trace context, span "process {topic}";
//  3. DLQ (when enabled): store what escapes, then acknowledge;
//  4. retry (when enabled): schedule a retry record, then acknowledge;
//  5. metrics: handler duration by outcome; a handler error marks the
//     process span failed;
//  6. middleware.Guard: records the unmarshaler rejected fail as
//     undecodable without reaching the handler, and a panic becomes an
//     error (RejectUndecodable and Recoverer in one frame).
//
// Tracing is left out when the stack was built WithoutTracing.
func (s *Stack) Middlewares() []message.HandlerMiddleware {
	mws := []message.HandlerMiddleware{s.enter}
	if s.tracer != nil {
		mws = append(mws, s.tracer.Middleware)
	}
	if s.queue != nil {
		mws = append(mws, s.queue.Middleware)
	}
	if s.retrier != nil {
		mws = append(mws, s.retrier.Middleware)
	}
	return append(mws, s.measure, middleware.Guard)
}

// Install adds the stack to r with r.AddMiddleware (see Middlewares for the
// order) and r.AddPlugin. When r runs, the plugin gives handlers that were
// added directly with r.AddConsumerHandler a dispatch companion (so their
// retries and DLQ reprocessing reach them), creates the retry and DLQ topics
// (Provision) and starts the retry-topic consumer. Install the stack on a
// router before adding router-level middlewares that should run inside it.
func (s *Stack) Install(r *message.Router) {
	r.AddMiddleware(s.Middlewares()...)
	r.AddPlugin(s.plugin)
	s.mu.Lock()
	s.routers = append(s.routers, r)
	s.mu.Unlock()
}

// AddHandler registers h for topic under handlerID on r (with
// r.AddConsumerHandler and the stack's subscriber) together with its
// dispatch companion, which receives its due retries and reprocessed DLQ
// records. Handler-level middlewares added to the returned handler apply to
// first deliveries only; use router-level middlewares for both. It returns an
// error for an empty or duplicate ID or an invalid retry policy.
func (s *Stack) AddHandler(r *message.Router, topic, handlerID string, h message.NoPublishHandlerFunc, opts ...HandlerOption) (*message.Handler, error) {
	if topic == "" || handlerID == "" {
		return nil, errors.New("kafkaevents: AddHandler needs a topic and a handler ID")
	}
	var ho handlerOptions
	for _, opt := range opts {
		opt(&ho)
	}
	s.mu.Lock()
	_, dup := s.handlers[handlerID]
	s.mu.Unlock()
	if dup {
		return nil, fmt.Errorf("kafkaevents: handler %q is already registered", handlerID)
	}
	if s.retrier != nil {
		switch {
		case ho.noRetry:
			_ = s.retrier.SetPolicy(handlerID, delayedretry.Policy{Disabled: true})
		case ho.policy != nil:
			if err := s.retrier.SetPolicy(handlerID, *ho.policy); err != nil {
				return nil, fmt.Errorf("kafkaevents: %w", err)
			}
		}
	}
	s.mu.Lock()
	s.handlers[handlerID] = HandlerInfo{ID: handlerID, Pattern: topic, Method: ho.method}
	s.mu.Unlock()
	s.expectMetrics(handlerID, topic)
	s.dispatcher.Expect(handlerID)
	main := r.AddConsumerHandler(handlerID, topic, s.subscriber, h)
	r.AddConsumerHandler(handlerID+dispatch.HandlerSuffix, handlerID, s.dispatcher, h)
	return main, nil
}

func (s *Stack) plugin(r *message.Router) error {
	for name, fn := range r.Handlers() {
		if strings.HasSuffix(name, dispatch.HandlerSuffix) || s.dispatcher.Known(name) {
			continue
		}
		s.mu.Lock()
		s.handlers[name] = HandlerInfo{ID: name}
		s.mu.Unlock()
		s.expectMetrics(name, "")
		s.dispatcher.Expect(name)
		r.AddConsumerHandler(name+dispatch.HandlerSuffix, name, s.dispatcher, func(msg *message.Message) error {
			_, err := fn(msg)
			return err
		})
	}
	parent := s.startCtx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, s.cfg.StartupTimeout)
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		if ctx.Err() != nil {
			return errors.Join(s.startupError(parent, "creating the retry and DLQ topics"), err)
		}
		return err
	}
	return s.startRetryConsumer()
}

// Handlers lists the registered handlers, sorted by ID.
func (s *Stack) Handlers() []HandlerInfo {
	s.mu.Lock()
	out := make([]HandlerInfo, 0, len(s.handlers))
	for _, h := range s.handlers {
		out = append(out, h)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b HandlerInfo) int { return strings.Compare(a.ID, b.ID) })
	for i := range out {
		out[i].Options = s.handlerOptions(out[i].ID)
	}
	return out
}

func (s *Stack) handlerOptions(id string) HandlerOptions {
	o := HandlerOptions{DLQ: s.queue != nil}
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
	for _, h := range s.handlers {
		if h.Pattern == "" {
			someUnknown = true
		} else if !slices.Contains(topics, h.Pattern) {
			topics = append(topics, h.Pattern)
		}
	}
	slices.Sort(topics)
	return topics, someUnknown
}
