package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/tracing"
)

// Option configures New.
type Option func(*options)

type options struct {
	logger      watermill.LoggerAdapter
	tp          trace.TracerProvider
	propagator  propagation.TextMapPropagator
	registry    *prometheus.Registry
	unmarshaler kafka.Unmarshaler
	noTracing   bool
	now         func() time.Time
}

// WithLogger sets the logger. Default: log/slog text output on stderr at
// Config.LogLevel.
func WithLogger(l watermill.LoggerAdapter) Option { return func(o *options) { o.logger = l } }

// WithTracerProvider sets the OpenTelemetry tracer provider. Default: the
// global one (a no-op unless the application set one).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tp = tp } }

// WithoutTracing turns tracing off: no process or send spans, and the trace
// context is neither extracted from records nor written into the records
// the stack publishes (retry and DLQ records, Producer sends). Stack.Tracer
// returns nil. Default: tracing on, with the global provider and propagator.
func WithoutTracing() Option { return func(o *options) { o.noTracing = true } }

// WithPropagator sets the trace context propagator. Default: the global one.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// WithRegistry registers the stack's Prometheus collectors on reg. Default:
// a private registry (never the global one), served by Stack.Gatherer.
func WithRegistry(reg *prometheus.Registry) Option { return func(o *options) { o.registry = reg } }

// WithUnmarshaler sets the record unmarshaler, wrapped in SafeUnmarshaler.
// Default: watermill-kafka's DefaultMarshaler.
func WithUnmarshaler(u kafka.Unmarshaler) Option { return func(o *options) { o.unmarshaler = u } }

// HandlerOption configures one handler registered with Stack.AddHandler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	policy  *delayedretry.Policy
	noRetry bool
	method  string
}

// WithRetry gives the handler its own retry policy instead of the global one
// (the NestJS @EventHandler(topic, {retry: {...}}) option).
func WithRetry(p delayedretry.Policy) HandlerOption {
	return func(o *handlerOptions) { o.policy = &p }
}

// WithoutRetry turns retries off for the handler: a failure goes to the DLQ
// with reason retry-disabled (the NestJS @SimpleEventHandler(topic)).
func WithoutRetry() HandlerOption { return func(o *handlerOptions) { o.noRetry = true } }

// WithMethod describes the function behind the handler in the handler list.
func WithMethod(name string) HandlerOption { return func(o *handlerOptions) { o.method = name } }

// Stack is the kafkaevents machinery for one service: the Kafka subscriber
// and producer, the retry middleware and retry-topic consumer, the DLQ and
// its reprocessor, correlation, tracing and metrics. Build it with New, put
// it on a router with Install, register handlers with AddHandler, run the
// router, and Close the stack after the router.
type Stack struct {
	cfg    Config
	logger watermill.LoggerAdapter

	saramaCfg   *sarama.Config
	client      sarama.Client
	admin       sarama.ClusterAdmin
	producer    *Producer
	handoff     *handoffSender
	subscriber  *drainingSubscriber
	tracer      *tracing.Tracer
	dispatcher  *dispatch.Dispatcher
	retrier     *delayedretry.Retrier
	retryStats  *delayedretry.Metrics
	queue       *dlq.Queue
	dlqStats    *dlq.Metrics
	reprocessor *dlq.Reprocessor
	registry    *prometheus.Registry
	durations   *prometheus.HistogramVec

	mu            sync.Mutex
	handlers      map[string]HandlerInfo
	routers       []*message.Router
	started       bool
	cancel        context.CancelFunc
	retryClient   sarama.Client
	retryConsumer *delayedretry.Consumer
	handoffClient sarama.Client
	wg            sync.WaitGroup
	closed        bool
}

// New builds a Stack from cfg (after SetDefaults and Validate; it does not
// read the environment: use Config.FromEnv for that). It connects to the
// brokers and returns an error when none answers or cfg is invalid.
func New(cfg Config, opts ...Option) (*Stack, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, err := cfg.producerSarama()
	if err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = watermill.NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()})))
	}
	s := &Stack{cfg: cfg, logger: o.logger, saramaCfg: sc, handlers: map[string]HandlerInfo{}}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()

	if s.client, err = sarama.NewClient(cfg.Brokers, sc); err != nil {
		return nil, fmt.Errorf("kafkaevents: connect to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	if s.admin, err = sarama.NewClusterAdmin(cfg.Brokers, sc); err != nil {
		return nil, fmt.Errorf("kafkaevents: admin client: %w", err)
	}
	if !o.noTracing {
		s.tracer = tracing.New(tracing.Config{TracerProvider: o.tp, Propagator: o.propagator, ConsumerGroup: cfg.Consumer.GroupID})
	}
	if s.producer, err = NewProducer(s.client, s.tracer); err != nil {
		return nil, err
	}
	marks := newOffsetMarks()
	// A claim that ends waits for its retry records at most this long:
	// within the shutdown timeout, and well within the rebalance timeout,
	// past which the coordinator would evict the member.
	marks.releaseWait = min(cfg.Consumer.ShutdownTimeout, cfg.Consumer.RebalanceTimeout/2)
	ks, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           handOutUnmarshaler{Unmarshaler: SafeUnmarshaler{Unmarshaler: o.unmarshaler}, marks: marks},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         cfg.Consumer.GroupID,
		Tracer:                marks,
	}, s.logger)
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: subscriber: %w", err)
	}
	s.subscriber = newDrainingSubscriber(ks, marks, cfg.Consumer.ShutdownTimeout)
	s.dispatcher = dispatch.New()
	s.retryStats = delayedretry.NewMetrics()
	s.dlqStats = dlq.NewMetrics()
	if cfg.RetryEnabled() {
		s.handoff = &handoffSender{Producer: s.producer}
		s.retrier, err = delayedretry.New(delayedretry.Config{
			Sender:      s.handoff,
			TopicPrefix: cfg.ServiceName + ".retry",
			Mode:        delayedretry.Mode(cfg.Retry.TopicMode),
			Policy:      cfg.retryPolicy(),
			Tracer:      s.tracer,
			Metrics:     s.retryStats,
			Now:         o.now,
			Holder:      marks,
		}, s.logger)
		if err != nil {
			return nil, err
		}
	}
	if cfg.DLQEnabled() {
		s.queue, err = dlq.New(dlq.Config{
			Sender: s.producer, Topic: s.DLQTopic(), Tracer: s.tracer, Metrics: s.dlqStats, Now: o.now, Holder: marks,
		}, s.logger)
		if err != nil {
			return nil, err
		}
		s.reprocessor, err = dlq.NewReprocessor(dlq.ReprocessorConfig{
			Client: s.client, Queue: s.queue, Dispatcher: s.dispatcher, MaxReprocess: cfg.DLQ.MaxReprocess,
		}, s.logger)
		if err != nil {
			return nil, err
		}
	}

	s.registry = o.registry
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kafkaevents", Name: "handler_duration_seconds",
		Help:    "Time spent in the handler, by handler and outcome (success or error).",
		Buckets: prometheus.DefBuckets,
	}, []string{"handler", "outcome"})
	for _, c := range []prometheus.Collector{s.retryStats, s.dlqStats, s.durations, lagCollector{s}} {
		if err := s.registry.Register(c); err != nil {
			return nil, fmt.Errorf("kafkaevents: register metrics: %w", err)
		}
	}
	ok = true
	return s, nil
}

func (c Config) retryPolicy() delayedretry.Policy {
	return delayedretry.Policy{
		Attempts:  c.Retry.Attempts,
		BaseDelay: c.Retry.BaseDelay,
		MaxDelay:  c.Retry.MaxDelay,
		Backoff:   delayedretry.Backoff(c.Retry.Backoff),
		Jitter:    c.Retry.Jitter,
	}
}

// Config returns the effective configuration (defaults applied).
func (s *Stack) Config() Config { return s.cfg }

// ServiceName returns the service name that prefixes the retry and DLQ topics.
func (s *Stack) ServiceName() string { return s.cfg.ServiceName }

// Subscriber returns the Kafka subscriber of the service's consumer group,
// for handlers added directly with router.AddConsumerHandler. When the router
// closes, it stops handing out messages but keeps its partitions until the
// messages being handled are acknowledged (at most Consumer.ShutdownTimeout),
// so that their offsets are committed and a restart does not deliver them
// again.
func (s *Stack) Subscriber() message.Subscriber { return s.subscriber }

// Producer returns the stack's producer.
func (s *Stack) Producer() *Producer { return s.producer }

// Tracer returns the stack's tracer, or nil when it was built WithoutTracing
// (a nil *tracing.Tracer is valid and does nothing).
func (s *Stack) Tracer() *tracing.Tracer { return s.tracer }

// Retrier returns the retry middleware, or nil when retries are disabled.
func (s *Stack) Retrier() *delayedretry.Retrier { return s.retrier }

// Queue returns the DLQ, or nil when it is disabled.
func (s *Stack) Queue() *dlq.Queue { return s.queue }

// Reprocessor returns the DLQ reprocessor, or nil when the DLQ is disabled.
func (s *Stack) Reprocessor() *dlq.Reprocessor { return s.reprocessor }

// Client returns the stack's sarama client. Do not close it.
func (s *Stack) Client() sarama.Client { return s.client }

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
		s.dispatcher.Expect(name)
		r.AddConsumerHandler(name+dispatch.HandlerSuffix, name, s.dispatcher, func(msg *message.Message) error {
			_, err := fn(msg)
			return err
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		return err
	}
	return s.startRetryConsumer()
}

// retryFetchMinBytes is how much data a fetch of the retry consumer waits for
// (unless its wait ends first): a few hundred retry records.
const retryFetchMinBytes = 64 << 10

// retryFetch returns the retry consumer's fetch minimum and wait. A retry
// record is due at least shortest after it was written, so the broker may
// hold a fetch for a quarter of that (at most maxWait) to answer with many
// records instead of one: one fetch, and one wake-up of each consumer
// goroutine, per batch rather than per record, while every record is still
// read long before it is due. A larger configured minimum is kept; with
// shortest under 4ms the configured minimum and wait are kept as they are.
func retryFetch(shortest time.Duration, minBytes int32, maxWait time.Duration) (int32, time.Duration) {
	wait := (shortest / 4).Truncate(time.Millisecond)
	if wait < time.Millisecond {
		return minBytes, maxWait
	}
	return max(minBytes, retryFetchMinBytes), min(wait, maxWait)
}

// handoffMaxLinger caps the linger of the retry hand-off producer.
const handoffMaxLinger = 25 * time.Millisecond

// handoffLinger returns how long the producer of the retry records that are
// handed off lets them gather: a quarter of the shortest retry delay, at most
// 25ms, and never less than the stack's own linger. A retry record is due at
// least shortest after the failure; written within a quarter of that, and
// fetched within another quarter (retryFetch), it is read long before it is
// due, while the broker gets a produce request per 25ms instead of per 5ms.
func handoffLinger(shortest, linger time.Duration) time.Duration {
	return max(linger, min((shortest/4).Truncate(time.Millisecond), handoffMaxLinger))
}

// startHandoffProducer gives the retry records that are handed off a
// producer of their own, on a client of its own, when they may linger
// longer than the stack's producer does; s.mu is held.
func (s *Stack) startHandoffProducer(shortest time.Duration) error {
	linger := handoffLinger(shortest, s.cfg.Producer.Linger)
	if linger <= max(s.cfg.Producer.Linger, 0) || s.handoff.held.Load() != nil {
		return nil
	}
	sc, err := s.cfg.producerSarama()
	if err != nil {
		return err
	}
	sc.Producer.Flush.Frequency = linger
	client, err := sarama.NewClient(s.cfg.Brokers, sc)
	if err != nil {
		return fmt.Errorf("kafkaevents: retry producer client: %w", err)
	}
	p, err := newAsyncProducer(client, s.tracer)
	if err != nil {
		_ = client.Close()
		return err
	}
	s.handoffClient = client
	s.handoff.held.Store(p)
	return nil
}

// handoffSender is the retry middleware's Sender. The retry records it
// hands off while their original's offset is held go through a producer
// that lingers longer (startHandoffProducer), once the retry consumer runs;
// the records the middleware waits for go through the stack's producer,
// which answers sooner.
type handoffSender struct {
	*Producer
	held atomic.Pointer[Producer]
}

// SendRecordAsync implements middleware.AsyncSender.
func (h *handoffSender) SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error)) {
	if p := h.held.Load(); p != nil {
		p.SendRecordAsync(ctx, rec, done)
		return
	}
	h.Producer.SendRecordAsync(ctx, rec, done)
}

func (s *Stack) startRetryConsumer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kafkaevents: stack is closed")
	}
	if s.started || s.retrier == nil {
		return nil
	}
	// A consumer group gets a config of its own: sticky balance strategies
	// keep state and must not be shared with the main group.
	sc, err := s.cfg.Sarama()
	if err != nil {
		return err
	}
	// The retry topics hold only records this service wrote and still owes a
	// delivery, so a partition without a committed offset is read from its
	// start whatever Subscriptions.FromBeginning says: starting at the end
	// would skip the retries that waited there when the instance that owned
	// the partition before crashed or handed it over.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	shortest := s.retrier.ShortestDelay()
	sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime = retryFetch(shortest, sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime)
	if err := s.startHandoffProducer(shortest); err != nil {
		return err
	}
	client, err := sarama.NewClient(s.cfg.Brokers, sc)
	if err != nil {
		return fmt.Errorf("kafkaevents: retry consumer client: %w", err)
	}
	var dead delayedretry.DeadLetterFunc
	if s.queue != nil {
		dead = s.queue.StoreConsumed
	}
	c, err := delayedretry.NewConsumer(delayedretry.ConsumerConfig{
		Client: client, GroupID: s.cfg.Consumer.GroupID + ".retry", Topics: s.retrier.Topics(),
		Dispatcher: s.dispatcher, DeadLetter: dead, Metrics: s.retryStats, MaxWait: s.cfg.Retry.Retention,
	}, s.logger)
	if err != nil {
		_ = client.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.retryClient, s.retryConsumer, s.cancel, s.started = client, c, cancel, true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := c.Run(ctx); err != nil {
			s.logger.Error("Retry consumer stopped", err, nil)
		}
	}()
	return nil
}

// Close stops the retry consumer and any DLQ reprocessing, then closes the
// subscriber, the producer and the clients. Close the router first. It is
// idempotent; it returns the errors of the closes that failed.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()

	var errs []error
	if s.reprocessor != nil {
		errs = append(errs, s.reprocessor.Close())
	}
	if cancel != nil {
		cancel()
	}
	if s.retryConsumer != nil {
		errs = append(errs, s.retryConsumer.Close())
	}
	s.wg.Wait()
	if s.dispatcher != nil {
		errs = append(errs, s.dispatcher.Close())
	}
	if s.subscriber != nil {
		errs = append(errs, s.subscriber.Close())
	}
	if s.handoff != nil {
		if p := s.handoff.held.Load(); p != nil {
			errs = append(errs, p.Close())
		}
	}
	if s.producer != nil {
		errs = append(errs, s.producer.Close())
	}
	for _, c := range []interface{ Close() error }{s.admin, s.retryClient, s.handoffClient, s.client} {
		if c != nil && !isNilCloser(c) {
			if err := c.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func isNilCloser(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case sarama.ClusterAdmin:
		return v == nil
	case sarama.Client:
		return v == nil
	}
	return false
}

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
		tracing.MarkFailed(trace.SpanFromContext(msg.Context()), err)
	}
	o.of(outcome, middleware.HandlerIDOf(msg)).Observe(elapsed.Seconds())
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
