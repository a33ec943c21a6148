package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/consume"
	"github.com/torix/kafkaevents/internal/keyorder"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/txn"
	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// Stack is the kafkaevents machinery for one service: the Kafka subscriber
// and producer, the retry middleware and retry-topic consumer, the DLQ and
// its reprocessor, correlation, tracing and metrics. Build it with New, put
// it on a router with Install, register handlers with AddHandler, run the
// router, and Close the stack after the router.
type Stack struct {
	cfg    Config
	logger watermill.LoggerAdapter
	// startCtx is the context given to NewContext; it bounds the waits of
	// the start that come later, when a router starts (see plugin).
	startCtx context.Context

	saramaCfg   *sarama.Config
	client      sarama.Client
	admin       sarama.ClusterAdmin
	producer    *Producer
	handoff     *handoffSender
	subscriber  *consume.Subscriber
	holder      consume.OffsetHolder
	tracer      *tracing.Tracer
	dispatcher  *dispatch.Dispatcher
	retrier     *delayedretry.Retrier
	retryStats  *delayedretry.Metrics
	queue       *dlq.Queue
	dlqStats    *dlq.Metrics
	reprocessor *dlq.Reprocessor
	browser     *dlq.Browser
	keys        *keyorder.Parker
	registry    *prometheus.Registry
	durations   *prometheus.HistogramVec
	keyWaits    *prometheus.HistogramVec

	// unknownTopics counts the handlers added directly to the router whose
	// topic is not known yet: enter learns it from their first delivery.
	unknownTopics atomic.Int32

	mu               sync.Mutex
	handlers         map[string]HandlerInfo
	routers          []*message.Router
	started          bool
	cancel           context.CancelFunc
	retryClient      sarama.Client
	retryConsumer    *delayedretry.Consumer
	handoffClient    sarama.Client
	keysClient       sarama.Client
	runs             *dlq.RunLog
	runsClient       sarama.Client
	keysWriter       *Producer
	keysWriterClient sarama.Client
	// txns are the hand-off transactions, txnSender their Sender, txnClient
	// their client; nil without exactly-once hand-offs (exactlyonce.go).
	txns      *txn.Committer
	txnSender *txnSender
	txnClient sarama.Client
	txnStats  *txnStats
	txnID     string
	wg        sync.WaitGroup
	closed    bool
}

// New is NewContext with a context that is never done: only
// Config.StartupTimeout bounds its wait for the brokers.
func New(cfg Config, opts ...Option) (*Stack, error) {
	return NewContext(context.Background(), cfg, opts...)
}

// NewContext builds a Stack from cfg (after SetDefaults and Validate; it
// does not read the environment: use Config.FromEnv for that). It connects
// to the brokers and returns an error when none answers or cfg is invalid;
// on an error, what it had built is closed.
//
// Connecting waits at most Config.StartupTimeout (an error wrapping
// ErrStartupTimeout names the brokers and the likely cause) and ends as soon
// as ctx is done (an error wrapping ctx's error, after a log line saying
// what it was waiting for), so that a signal context stops a service that
// cannot reach its brokers. ctx also bounds the creation of the retry and
// DLQ topics when a router the stack is installed on starts; pass the
// context the service runs with, not one that ends when NewContext returns.
func NewContext(ctx context.Context, cfg Config, opts ...Option) (*Stack, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := newOptions(cfg, opts)
	s := &Stack{cfg: cfg, logger: o.logger, handlers: map[string]HandlerInfo{}, startCtx: ctx}
	wait, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	built := make(chan error, 1)
	go func() { built <- s.build(o) }()
	select {
	case err := <-built:
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		return s, nil
	case <-wait.Done():
		// sarama's connect takes no context: let it finish in the
		// background and close what it built.
		go func() {
			<-built //nolint:errcheck // the startup error is already reported; close what was built either way
			_ = s.Close()
		}()
		return nil, s.startupError(ctx, "connecting to the brokers")
	}
}

// build runs the steps of NewContext.
func (s *Stack) build(o options) error {
	for _, step := range []func(options) error{
		s.connect,
		s.buildProducer,
		s.buildExactlyOnce,
		s.buildSubscriber,
		s.buildKeyOrder,
		s.buildRetry,
		s.buildDLQ,
		s.registerMetrics,
	} {
		if err := step(o); err != nil {
			return err
		}
	}
	return nil
}

// connect opens the stack's client and admin client to the brokers.
func (s *Stack) connect(options) error {
	sc, err := s.cfg.producerSarama()
	if err != nil {
		return err
	}
	s.saramaCfg = sc
	if s.client, err = sarama.NewClient(s.cfg.Brokers, sc); err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: connect to %s: %w", redactBrokers(s.cfg.Brokers), err))
	}
	if s.admin, err = sarama.NewClusterAdmin(s.cfg.Brokers, sc); err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: admin client: %w", err))
	}
	return nil
}

// buildProducer sets up tracing (unless WithoutTracing) and the producer.
func (s *Stack) buildProducer(o options) error {
	if !o.noTracing {
		s.tracer = tracing.New(tracing.Config{
			TracerProvider: o.tp, Propagator: o.propagator, ConsumerGroup: s.cfg.Consumer.GroupID,
			ClientID: s.cfg.ClientID, Broker: s.cfg.Brokers[0],
		})
	}
	var err error
	s.producer, err = NewProducer(s.client, s.tracer)
	return err
}

// buildSubscriber builds the consumer group's subscriber, with the offset
// tracker between watermill-kafka and sarama (see internal/offsets) and the
// wrapper around it that drains on stop and schedules concurrent handlers
// (internal/consume).
func (s *Stack) buildSubscriber(o options) error {
	cfg := s.cfg
	// A claim that ends waits for its retry records at most this long:
	// within the shutdown timeout, and well within the rebalance timeout,
	// past which the coordinator would evict the member. The marks of
	// concurrent handlers reach the session at least once per commit.
	marks := offsets.NewTracker(offsets.Config{
		ReleaseWait:   min(cfg.Consumer.ShutdownTimeout, cfg.Consumer.RebalanceTimeout/2),
		FlushInterval: min(100*time.Millisecond, cfg.Consumer.CommitInterval),
		Committed:     s.committed,
		Logger:        s.logger,
		Group:         cfg.Consumer.GroupID,
		OnClaim:       s.onClaim,
		Commit:        s.trackerCommit(),
	})
	if s.txns != nil {
		s.txns.AddSource(marks.Commits)
	}
	newKafka := func(sc *sarama.Config) (message.Subscriber, error) {
		ks, err := kafka.NewSubscriber(kafka.SubscriberConfig{
			Brokers:               cfg.Brokers,
			Unmarshaler:           consume.HandOutUnmarshaler{Unmarshaler: SafeUnmarshaler{Unmarshaler: o.unmarshaler}, Marks: marks},
			OverwriteSaramaConfig: sc,
			ConsumerGroup:         cfg.Consumer.GroupID,
			Tracer:                marks,
		}, s.logger)
		if err != nil {
			return nil, fmt.Errorf("kafkaevents: subscriber: %w", err)
		}
		return ks, nil
	}
	var ks message.Subscriber
	if cfg.Consumer.InstanceID == "" {
		var err error
		if ks, err = newKafka(s.saramaCfg); err != nil {
			return err
		}
	} else {
		// Static membership: a member of its own, with an ID of its own,
		// per topic (membership.go).
		ks = &memberSubscriber{
			base: cfg.Consumer.InstanceID, group: cfg.Consumer.GroupID, logger: s.logger,
			newSub: func(instanceID string) (message.Subscriber, error) {
				sc, err := cfg.stackSarama()
				if err != nil {
					return nil, err
				}
				sc.Consumer.Group.InstanceId = instanceID
				return newKafka(sc)
			},
		}
	}
	s.subscriber = consume.NewSubscriber(ks, marks, consume.Config{
		Drain:  cfg.Consumer.ShutdownTimeout,
		Logger: s.logger,
		// The topics of handlers added directly to the router are known here.
		OnSubscribe: func(topic string) { s.dlqStats.ExpectTopic(topic) },
		Default:     consume.Settings{HandlerID: "direct", Concurrency: cfg.Consumer.Concurrency, Stats: s.handlerStats()},
	})
	s.holder = consume.OffsetHolder{Marks: marks}
	s.dispatcher = dispatch.New()
	return nil
}

// buildRetry builds the retry middleware when retries are enabled.
func (s *Stack) buildRetry(o options) error {
	s.retryStats = delayedretry.NewMetrics()
	if !s.cfg.RetryEnabled() {
		return nil
	}
	var sender wire.Sender = s.txnSender
	if s.txns == nil {
		s.handoff = &handoffSender{Producer: s.producer}
		sender = s.handoff
	}
	var err error
	s.retrier, err = delayedretry.New(delayedretry.Config{
		Sender:      sender,
		TopicPrefix: s.cfg.ServiceName + ".retry",
		Mode:        delayedretry.Mode(s.cfg.Retry.TopicMode),
		Policy:      s.cfg.retryPolicy(),
		Tracer:      s.tracer,
		Metrics:     s.retryStats,
		Now:         o.now,
		Holder:      s.holder,
		Parker:      s.keys,
	}, s.logger)
	return err
}

// buildDLQ builds the DLQ middleware and its reprocessor when the DLQ is
// enabled.
func (s *Stack) buildDLQ(o options) error {
	s.dlqStats = dlq.NewMetrics()
	if !s.cfg.DLQEnabled() {
		return nil
	}
	var sender wire.Sender = s.producer
	if s.txns != nil {
		sender = s.txnSender
	}
	var err error
	s.queue, err = dlq.New(dlq.Config{
		Sender: sender, Topic: s.DLQTopic(), Tracer: s.tracer, Metrics: s.dlqStats, Now: o.now, Holder: s.holder, Parker: s.keys,
	}, s.logger)
	if err != nil {
		return err
	}
	s.runs, err = dlq.NewRunLog(dlq.RunLogConfig{
		Sender: s.producer, Topic: s.DLQRunsTopic(), Instance: s.cfg.Consumer.InstanceID, Logger: s.logger,
	})
	if err != nil {
		return err
	}
	rcfg := dlq.ReprocessorConfig{
		Client: s.client, Queue: s.queue, Dispatcher: s.dispatcher, MaxReprocess: s.cfg.DLQ.MaxReprocess,
		Concurrency: s.concurrencyOf, Runs: s.runs,
	}
	if s.txns != nil {
		rcfg.Transactions = reprocessCommits{s.txns}
	}
	s.reprocessor, err = dlq.NewReprocessor(rcfg, s.logger)
	if err != nil {
		return err
	}
	s.browser, err = dlq.NewBrowser(dlq.BrowserConfig{Client: s.client, Topic: s.DLQTopic()})
	return err
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

// Logger returns the stack's logger: the one given WithLogger, or else the
// default text logger on stderr. Components built on the stack, such as the
// health package's audit log, log through it by default, so that a service
// writes one log format.
func (s *Stack) Logger() watermill.LoggerAdapter { return s.logger }

// Retrier returns the retry middleware, or nil when retries are disabled.
func (s *Stack) Retrier() *delayedretry.Retrier { return s.retrier }

// Queue returns the DLQ, or nil when it is disabled.
func (s *Stack) Queue() *dlq.Queue { return s.queue }

// Reprocessor returns the DLQ reprocessor, or nil when the DLQ is disabled.
func (s *Stack) Reprocessor() *dlq.Reprocessor { return s.reprocessor }

// Client returns the stack's sarama client. Do not close it.
func (s *Stack) Client() sarama.Client { return s.client }

// Close stops the retry consumer and any DLQ reprocessing, then closes the
// subscriber, the producer and the clients. Close the router first. It is
// idempotent; it returns the errors of the closes that failed.
//
// The consumer group members leave their groups, so that the other
// instances take their partitions at once; with Config.Consumer.InstanceID
// set they do not (static membership): their partitions wait for an
// instance with the same ID until the session timeout passes (see
// docs/operations.md#static-membership).
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
	if s.keys != nil {
		errs = append(errs, s.keys.Close())
	}
	if s.runs != nil {
		errs = append(errs, s.runs.Close())
	}
	if s.keysWriter != nil {
		errs = append(errs, s.keysWriter.Close())
	}
	if s.txns != nil {
		errs = append(errs, s.txns.Close())
	}
	if s.handoff != nil {
		if p := s.handoff.held.Load(); p != nil {
			errs = append(errs, p.Close())
		}
	}
	if s.producer != nil {
		errs = append(errs, s.producer.Close())
	}
	for _, c := range []interface{ Close() error }{s.admin, s.retryClient, s.handoffClient, s.keysClient, s.keysWriterClient, s.runsClient, s.txnClient, s.client} {
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

// committed reads the committed offset and metadata of tp for the consumer
// group, so that a claim skips the records its metadata says were settled.
func (s *Stack) committed(tp offsets.Partition) (int64, string, error) {
	return s.committedIn(s.cfg.Consumer.GroupID, tp)
}

// committedIn is committed for group.
func (s *Stack) committedIn(group string, tp offsets.Partition) (int64, string, error) {
	b, err := s.client.Coordinator(group)
	if err != nil {
		return 0, "", err
	}
	req := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: group}
	req.AddPartition(tp.Topic, tp.Partition)
	resp, err := b.FetchOffset(req)
	if err != nil {
		return 0, "", err
	}
	blk := resp.GetBlock(tp.Topic, tp.Partition)
	if blk == nil {
		return 0, "", fmt.Errorf("kafkaevents: no committed offset of %s/%d", tp.Topic, tp.Partition)
	}
	if blk.Err != sarama.ErrNoError {
		return 0, "", blk.Err
	}
	return blk.Offset, blk.Metadata, nil
}
