package kafkaevents

import (
	"log/slog"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/delayedretry"
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

// WithLogger sets the logger. Default: [NewSlogLogger] of a log/slog text
// handler on stderr at Config.LogLevel. Retries scheduled and records
// dead-lettered are logged at WARN when l has a method
// Warn(msg string, fields watermill.LogFields), as NewSlogLogger's loggers
// do, and at INFO otherwise.
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
	policy      *delayedretry.Policy
	noRetry     bool
	method      string
	concurrency *int
	ordering    Ordering
}

// WithRetry gives the handler its own retry policy instead of the global one
// (the NestJS @EventHandler(topic, {retry: {...}}) option). A policy whose
// MaxDelay is 0 inherits the stack's cap, Config.Retry.MaxDelay (default
// 30s), as the global policy has it; set MaxDelay for another cap.
// AddHandler rejects a policy with a field out of range (see
// delayedretry.Policy.Validate), and WithRetry together with WithoutRetry.
func WithRetry(p delayedretry.Policy) HandlerOption {
	return func(o *handlerOptions) { o.policy = &p }
}

// WithoutRetry turns retries off for the handler: a failure goes to the DLQ
// with reason retry-disabled (the NestJS @SimpleEventHandler(topic)).
func WithoutRetry() HandlerOption { return func(o *handlerOptions) { o.noRetry = true } }

// WithMethod describes the function behind the handler in the handler list.
func WithMethod(name string) HandlerOption { return func(o *handlerOptions) { o.method = name } }

// WithConcurrency lets the handler handle up to n records of one partition
// at once (at most [MaxConcurrency]); see [Config.Consumer.Concurrency] for
// the default and docs/concurrency.md for the guarantees. By default records
// with the same key run one at a time, in offset order ([WithOrdering]).
// AddHandler returns an error for n outside 1 to MaxConcurrency.
func WithConcurrency(n int) HandlerOption { return func(o *handlerOptions) { o.concurrency = &n } }

// WithOrdering sets which records a handler with a concurrency above 1 may
// run at once: [OrderByKey] (the default) or [Unordered].
func WithOrdering(ord Ordering) HandlerOption { return func(o *handlerOptions) { o.ordering = ord } }

// newOptions applies opts over the defaults: the clock, and a text logger
// to standard error at cfg's log level.
func newOptions(cfg Config, opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()})))
	}
	return o
}
