package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// counter counts handled messages and closes done at target.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
	first  atomic.Int64 // unix nanos of the first message
}

// newCounter returns a counter done after target adds; with a target of 0
// it is done at once.
func newCounter(target int) *counter {
	c := &counter{target: int64(target), done: make(chan struct{})}
	if target == 0 {
		close(c.done)
	}
	return c
}

func (c *counter) add() {
	n := c.n.Add(1)
	if n == 1 {
		c.first.Store(time.Now().UnixNano())
	}
	if n == c.target {
		close(c.done)
	}
}

func (c *counter) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("handled %d of %d messages in %s", c.n.Load(), c.target, timeout)
	}
}

// consumeResult is one consumer measured from router start until all
// messages were handled.
type consumeResult struct {
	total      time.Duration // router start to last message handled
	firstAfter time.Duration // router start to first message handled
	cpu        time.Duration // CPU time of the process (broker included) meanwhile
	// retried is how many retries were handled by the end of the timed
	// window (failingConsume).
	retried int64
}

func (r consumeResult) rate(n int) float64 { return float64(n) / r.total.Seconds() }

// steadyRate leaves the start (consumer group join, first fetch) out: the
// messages after the first over the time from the first to the last.
func (r consumeResult) steadyRate(n int) float64 {
	return float64(n-1) / (r.total - r.firstAfter).Seconds()
}

// bareConsume measures a bare Watermill router: the watermill-kafka
// subscriber (same sarama settings as the stack's), a no-op handler and no
// middleware.
func (e *env) bareConsume(topic string, n int, work func(*message.Message) error) (consumeResult, error) {
	c := newCounter(n)
	return e.bareRun(topic, c, func(msg *message.Message) error {
		c.add()
		return work(msg)
	})
}

// bareRun runs a bare Watermill router with handler h on topic until c is
// done.
func (e *env) bareRun(topic string, c *counter, h func(*message.Message) error) (consumeResult, error) {
	group := e.name("bare-group")
	sc, err := e.saramaConfig(group)
	if err != nil {
		return consumeResult{}, err
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers: e.brokers, Unmarshaler: kafka.DefaultMarshaler{}, OverwriteSaramaConfig: sc, ConsumerGroup: group,
	}, watermill.NopLogger{})
	if err != nil {
		return consumeResult{}, err
	}
	defer func() { _ = sub.Close() }()
	r, err := newRouter()
	if err != nil {
		return consumeResult{}, err
	}
	r.AddConsumerHandler("bare", topic, sub, h)
	return timeRouter(r, c)
}

// timeRouter runs r, waits for c and returns the times from the start of Run.
func timeRouter(r *message.Router, c *counter) (consumeResult, error) {
	done := make(chan error, 1)
	runtime.GC()
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- r.Run(context.Background()) }()
	err := c.wait(10 * time.Minute)
	res := consumeResult{total: time.Since(start), firstAfter: time.Duration(c.first.Load() - start.UnixNano()), cpu: cpuTime() - cpu0}
	_ = r.Close()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	return res, err
}

// discardExporter is an OpenTelemetry span exporter that drops every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// tracingMode selects the tracer provider of a stack.
type tracingMode int

const (
	tracingNoop tracingMode = iota
	tracingSDK
	tracingOff
)

// stackOptions returns the options of a stack with the tracing mode and a
// function that shuts the provider down.
func stackOptions(mode tracingMode) ([]kafkaevents.Option, func()) {
	opts := []kafkaevents.Option{kafkaevents.WithLogger(watermill.NopLogger{})}
	var tp trace.TracerProvider = noop.NewTracerProvider()
	shutdown := func() {}
	if mode == tracingOff {
		return append(opts, kafkaevents.WithoutTracing()), shutdown
	}
	if mode == tracingSDK {
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discardExporter{}))
		tp, shutdown = sdk, func() { _ = sdk.Shutdown(context.Background()) }
		opts = append(opts, kafkaevents.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
	}
	return append(opts, kafkaevents.WithTracerProvider(tp)), shutdown
}

// stackRun is a stack with its router, built but not running.
type stackRun struct {
	stack    *kafkaevents.Stack
	router   *message.Router
	shutdown func()
}

// newStackRun builds a stack with every middleware (Install), lets setup add
// handlers and provisions the retry and DLQ topics, so that the measured
// start of the router does not include creating them.
func (e *env) newStackRun(cfg kafkaevents.Config, mode tracingMode, setup func(*kafkaevents.Stack, *message.Router) error) (*stackRun, error) {
	opts, shutdown := stackOptions(mode)
	s, err := kafkaevents.New(cfg, opts...)
	if err != nil {
		shutdown()
		return nil, err
	}
	r, err := newRouter()
	if err != nil {
		_ = s.Close()
		shutdown()
		return nil, err
	}
	s.Install(r)
	if err := setup(s, r); err != nil {
		_ = s.Close()
		shutdown()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		_ = s.Close()
		shutdown()
		return nil, err
	}
	return &stackRun{stack: s, router: r, shutdown: shutdown}, nil
}

func (sr *stackRun) close() {
	_ = sr.stack.Close()
	sr.shutdown()
}

// stackConsume measures the full stack with a no-op handler.
func (e *env) stackConsume(topic string, n int, mode tracingMode, work func(*message.Message) error, opts ...kafkaevents.HandlerOption) (consumeResult, error) {
	c := newCounter(n)
	sr, err := e.newStackRun(e.stackConfig("full"), mode, func(s *kafkaevents.Stack, r *message.Router) error {
		_, err := s.AddHandler(r, topic, "Bench.noop", func(msg *message.Message) error {
			c.add()
			return work(msg)
		}, opts...)
		return err
	})
	if err != nil {
		return consumeResult{}, err
	}
	defer sr.close()
	return timeRouter(sr.router, c)
}

// failingConsume measures the full stack when every tenth message fails on
// its first delivery and succeeds on its retry (delay retryDelay). The time
// is until every first delivery was handled; it also waits for the retries.
// With failing false the handler does the same work and fails nothing: the
// baseline of the failure path.
func (e *env) failingConsume(topic string, n int, retryDelay time.Duration, failing, exactlyOnce bool) (consumeResult, error) {
	first := newCounter(n)
	failures := 0
	if failing {
		failures = failuresOf(n)
	}
	retried := newCounter(failures)
	cfg := e.stackConfig("fail")
	cfg.Retry.Attempts, cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 1, retryDelay, retryDelay
	cfg.Producer.ExactlyOnceHandoffs = kafkaevents.Bool(exactlyOnce)
	sr, err := e.newStackRun(cfg, tracingNoop, func(s *kafkaevents.Stack, r *message.Router) error {
		_, err := s.AddHandler(r, topic, "Bench.failTenth", func(msg *message.Message) error {
			if wire.RetryCountOf(msg) > 0 {
				retried.add()
				return nil
			}
			first.add()
			if failsOnce(msg) && failing {
				return errors.New("fails once")
			}
			return nil
		})
		return err
	})
	if err != nil {
		return consumeResult{}, err
	}
	defer sr.close()
	done := make(chan error, 1)
	runtime.GC()
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- sr.router.Run(context.Background()) }()
	err = first.wait(10 * time.Minute)
	res := consumeResult{total: time.Since(start), firstAfter: time.Duration(first.first.Load() - start.UnixNano()), cpu: cpuTime() - cpu0, retried: retried.n.Load()}
	if err == nil {
		err = retried.wait(5 * time.Minute)
	}
	_ = sr.router.Close()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	return res, err
}

// noWork is the no-op handler.
func noWork(*message.Message) error { return nil }

// order is what decodeWork decodes the payload into.
type order struct {
	OrderID string `json:"orderId"`
	Note    string `json:"note"`
}

// decodeWork is a handler that does a little real work: it decodes the JSON
// payload.
func decodeWork(msg *message.Message) error {
	var o order
	return json.Unmarshal(msg.Payload, &o)
}

// failuresOf is how many of n messages failsOnce picks: every tenth.
func failuresOf(n int) int { return (n + 9) / 10 }

// failsOnce picks every tenth message by the number in its key.
func failsOnce(msg *message.Message) bool {
	key, _ := kafka.MessageKeyFromCtx(msg.Context())
	if len(key) < len("order-") {
		return false
	}
	i, err := strconv.Atoi(string(key[len("order-"):]))
	return err == nil && i%10 == 0
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sendRecordLatency times sequential Producer.SendRecord calls, the hand-off
// the retry middleware makes for each failed message before the original is
// acknowledged, and returns their median.
func (e *env) sendRecordLatency(n, size int) (time.Duration, error) {
	topic := e.name("sendrecord")
	if err := e.createTopics(topic); err != nil {
		return 0, err
	}
	opts, shutdown := stackOptions(tracingNoop)
	defer shutdown()
	s, err := kafkaevents.New(e.stackConfig("sendrecord"), opts...)
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Close() }()
	lat := make([]time.Duration, n)
	for i := range n {
		rec := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("order-" + strconv.Itoa(i)), Value: sarama.ByteEncoder(payload(i, size))}
		start := time.Now()
		if err := s.Producer().SendRecord(context.Background(), rec); err != nil {
			return 0, err
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}
