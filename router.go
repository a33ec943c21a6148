package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/internal/consume"
	"github.com/torix/kafkaevents/middleware"
)

// Middlewares returns the stack's middlewares in the order Install adds
// them, outermost first:
//
//  1. entry (admission, stack growth and correlation.Middleware in one
//     frame): while a subscription of the stack's subscriber drains (its
//     router stops, or the stack closes), a message it still hands out is
//     nacked without being handled, so that its offset stays uncommitted;
//     otherwise the correlation ID goes into the context and onto the
//     outputs, the topic of a handler added to the router directly is
//     learnt from its first delivery, and the goroutine's stack is grown
//     for a handler that needs it (internal/growstack);
//  2. tracing: extract the trace context, span "process {topic}";
//  3. DLQ (when enabled): store what escapes, then acknowledge;
//  4. retry (when enabled): schedule a retry record, then acknowledge;
//  5. metrics: handler duration by outcome; a handler error marks the
//     process span failed;
//  6. middleware.Guard: records the unmarshaler rejected fail as
//     undecodable without reaching the handler, and a panic becomes an
//     error (RejectUndecodable and RecoverPanics in one frame).
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
// first deliveries only; use router-level middlewares for both.
//
// It returns an error, before registering anything, for an empty topic or
// ID, an ID already registered, a topic another handler of the stack
// already consumes (two handlers in one consumer group would split the
// topic's partitions, each seeing only part of the records), WithRetry
// together with WithoutRetry, WithRetry when retries are off, WithConcurrency
// outside 1 to MaxConcurrency, and a WithRetry
// policy with a field out of range; the message names the field and the
// option to change.
func (s *Stack) AddHandler(r *message.Router, topic, handlerID string, h message.NoPublishHandlerFunc, opts ...HandlerOption) (*message.Handler, error) {
	if topic == "" || handlerID == "" {
		return nil, errors.New("kafkaevents: AddHandler needs a topic and a handler ID")
	}
	var ho handlerOptions
	for _, opt := range opts {
		opt(&ho)
	}
	n := s.cfg.Consumer.Concurrency
	if ho.concurrency != nil {
		n = *ho.concurrency
	}
	if n < 1 || n > MaxConcurrency {
		return nil, fmt.Errorf("kafkaevents: handler %q: WithConcurrency(%d): want 1 to %d records of a partition in flight", handlerID, n, MaxConcurrency)
	}
	if ho.ordering != OrderByKey && ho.ordering != Unordered {
		return nil, fmt.Errorf("kafkaevents: handler %q: WithOrdering(%d): want OrderByKey or Unordered", handlerID, ho.ordering)
	}
	if err := s.checkHandler(topic, handlerID, &ho); err != nil {
		return nil, err
	}
	if err := s.checkKeyOrder(topic, handlerID, &ho); err != nil {
		return nil, err
	}
	if s.retrier != nil {
		switch {
		case ho.noRetry:
			// Without retries, KeepKeyOrder still holds a key behind a
			// dead-lettered record.
			def := s.cfg.retryPolicy()
			_ = s.retrier.SetPolicy(handlerID, delayedretry.Policy{Disabled: true, KeepKeyOrder: def.KeepKeyOrder, DeadLetteredKey: def.DeadLetteredKey})
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
	s.subscriber.SetHandler(topic, consume.Settings{
		HandlerID: handlerID, Concurrency: n, Unordered: ho.ordering == Unordered, Stats: s.handlerStats(),
	})
	main := r.AddConsumerHandler(handlerID, topic, s.subscriber, h)
	r.AddConsumerHandler(handlerID+dispatch.HandlerSuffix, dispatch.Topic(handlerID), s.dispatcher, h)
	return main, nil
}

// checkHandler returns the error AddHandler gives for a handler that cannot
// be registered as asked, and gives a WithRetry policy without MaxDelay the
// stack's cap.
func (s *Stack) checkHandler(topic, handlerID string, ho *handlerOptions) error {
	s.mu.Lock()
	_, dup := s.handlers[handlerID]
	var other string
	for id := range s.handlers {
		if s.handlers[id].Pattern == topic {
			other = s.handlers[id].ID
		}
	}
	s.mu.Unlock()
	switch {
	case dup:
		return fmt.Errorf("kafkaevents: AddHandler(%q, %q): handler ID %q is already registered; give each handler an ID of its own", topic, handlerID, handlerID)
	case other != "":
		return fmt.Errorf("kafkaevents: AddHandler(%q, %q): topic %q is already handled by %q in consumer group %q; "+
			"two handlers of one group split the topic's partitions and each sees only part of the records: "+
			"do both jobs in one handler, or consume the topic with a second stack whose Consumer.GroupID differs",
			topic, handlerID, topic, other, s.cfg.Consumer.GroupID)
	case ho.noRetry && ho.policy != nil:
		return fmt.Errorf("kafkaevents: AddHandler(%q, %q): WithRetry and WithoutRetry both given; keep WithRetry to retry with its policy, or WithoutRetry to send failures straight to the DLQ", topic, handlerID)
	case ho.policy == nil:
		return nil
	case s.retrier == nil:
		return fmt.Errorf("kafkaevents: AddHandler(%q, %q): WithRetry given but retries are off (Config.Retry.Enabled, KAFKA_RETRY_ENABLED); turn them on or drop WithRetry", topic, handlerID)
	}
	p := *ho.policy
	if p.MaxDelay == 0 && !p.Disabled && p.Attempts > 0 {
		p.MaxDelay = s.cfg.Retry.MaxDelay
		if p.BaseDelay > p.MaxDelay {
			return fmt.Errorf("kafkaevents: AddHandler(%q, %q): WithRetry: field BaseDelay = %s exceeds the MaxDelay it inherits from Config.Retry.MaxDelay (%s); set MaxDelay in the policy given to WithRetry",
				topic, handlerID, p.BaseDelay, p.MaxDelay)
		}
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("kafkaevents: AddHandler(%q, %q): WithRetry: %w; fix the delayedretry.Policy given to WithRetry", topic, handlerID, err)
	}
	ho.policy = &p
	return nil
}

func (s *Stack) plugin(r *message.Router) error {
	for name, fn := range r.Handlers() {
		if strings.HasSuffix(name, dispatch.HandlerSuffix) || s.dispatcher.Known(name) {
			continue
		}
		s.mu.Lock()
		s.handlers[name] = HandlerInfo{ID: name}
		s.mu.Unlock()
		s.unknownTopics.Add(1)
		s.expectMetrics(name, "")
		s.dispatcher.Expect(name)
		r.AddConsumerHandler(name+dispatch.HandlerSuffix, dispatch.Topic(name), s.dispatcher, func(msg *message.Message) error {
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
	if err := s.startKeyOrder(parent); err != nil {
		return err
	}
	if err := s.startDLQRuns(parent); err != nil {
		return err
	}
	return s.startRetryConsumer(parent)
}
