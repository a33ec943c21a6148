package kafkaevents

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// Gatherer returns the registry that holds the stack's Prometheus metrics.
func (s *Stack) Gatherer() prometheus.Gatherer { return s.registry }

// ResetMetrics zeroes the counters of component: "all", "retry" or "dlq".
// Prometheus histograms are not reset (Prometheus counters only grow). It
// returns ErrUnknownComponent for anything else.
func (s *Stack) ResetMetrics(component string) error {
	switch component {
	case "all", "":
		s.retryStats.Reset()
		s.dlqStats.Reset()
	case "retry":
		s.retryStats.Reset()
	case "dlq":
		s.dlqStats.Reset()
	default:
		return fmt.Errorf("%w: %q", ErrUnknownComponent, component)
	}
	return nil
}

// registerMetrics registers the stack's collectors on the registry given
// WithRegistry, or on a registry of its own.
func (s *Stack) registerMetrics(o options) error {
	s.registry = o.registry
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kafkaevents", Name: "handler_duration_seconds",
		Help:    "Time spent in the handler, by handler and outcome (success or error).",
		Buckets: prometheus.DefBuckets,
	}, []string{"handler", "outcome"})
	s.keyWaits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kafkaevents", Name: "key_wait_seconds",
		Help:    "Time a record waited behind an earlier record with the same key, by handler (handlers with a concurrency above 1).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"handler"})
	collectors := []prometheus.Collector{s.retryStats, s.dlqStats, s.durations, s.keyWaits, lagCollector{s}, concurrencyCollector{s}, keyOrderCollector{s}}
	if s.txns != nil {
		collectors = append(collectors, s.txnStats.collectors()...)
	}
	for _, c := range collectors {
		if err := s.registry.Register(c); err != nil {
			return fmt.Errorf("kafkaevents: register metrics: %w", err)
		}
	}
	return nil
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

// observers caches the children of a HistogramVec by outcome and handler
// ID, for the metrics middleware (Stack.measure). A router handler sees one
// handler ID or a few, so each outcome has a short list, scanned without a
// lock and copied on the rare miss. A list and not a map: a map lookup takes
// about 240 bytes of stack, and this one runs deep in the chain, on the
// goroutine Watermill starts per message, whose 2 KiB stack grows by
// copying.
type observers struct {
	h      message.HandlerFunc // the handler measure wraps
	vec    *prometheus.HistogramVec
	mu     sync.Mutex
	byID   [2]atomic.Pointer[[]observerOf] // success, error
	labels [2]string
}

// observerOf is the child of the HistogramVec for one handler ID.
type observerOf struct {
	id  string
	obs prometheus.Observer
}

func newObservers(vec *prometheus.HistogramVec) *observers {
	return &observers{vec: vec, labels: [2]string{"success", "error"}}
}

// observe is measure's work after the handler, in a function of its own so
// that the frame of measure, live while the handler runs, stays small:
// Watermill runs each message in a new goroutine whose stack grows by
// copying. A succeeded message costs one look-up of its span, for the
// exemplar.
func (o *observers) observe(msg *message.Message, elapsed time.Duration, err error) {
	outcome := 0
	if err != nil {
		outcome = 1
		markFailed(msg, err)
	}
	obs := o.of(outcome, wire.HandlerIDOf(msg))
	if !observeSampled(obs, msg, elapsed) {
		obs.Observe(elapsed.Seconds())
	}
}

// noSpan is what trace.SpanFromContext returns for a context without a span.
var noSpan = trace.SpanFromContext(context.Background())

// observeSampled observes elapsed with the trace ID of the span of msg's
// context as an exemplar, and reports true, when that span is sampled. A
// function of its own, so that the frame of observe, which runs for every
// message, stays small; a context without a span (no tracing, and no trace
// context in the record) is answered without reading a span context, which
// is large and stays in the frame of isSampled, as the exemplar stays in
// that of observeWithTrace.
//
//go:noinline
func observeSampled(obs prometheus.Observer, msg *message.Message, elapsed time.Duration) bool {
	span := trace.SpanFromContext(msg.Context())
	if span == noSpan || !isSampled(span) {
		return false
	}
	observeWithTrace(obs, span, elapsed)
	return true
}

// observeWithTrace observes elapsed with the trace ID of span as an
// exemplar, out of the frame of observeSampled.
//
//go:noinline
func observeWithTrace(obs prometheus.Observer, span trace.Span, elapsed time.Duration) {
	if eo, ok := obs.(prometheus.ExemplarObserver); ok {
		eo.ObserveWithExemplar(elapsed.Seconds(), prometheus.Labels{"trace_id": span.SpanContext().TraceID().String()})
		return
	}
	obs.Observe(elapsed.Seconds())
}

//go:noinline
func isSampled(span trace.Span) bool { return span.SpanContext().IsSampled() }

// markFailed marks the process span of msg failed, out of the frame of
// observe.
//
//go:noinline
func markFailed(msg *message.Message, err error) {
	tracing.MarkFailed(trace.SpanFromContext(msg.Context()), err)
}

func (o *observers) of(outcome int, handlerID string) prometheus.Observer {
	if l := o.byID[outcome].Load(); l != nil {
		for i := range *l {
			if (*l)[i].id == handlerID {
				return (*l)[i].obs
			}
		}
	}
	return o.add(outcome, handlerID)
}

func (o *observers) add(outcome int, handlerID string) prometheus.Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var next []observerOf
	if l := o.byID[outcome].Load(); l != nil {
		for _, e := range *l {
			if e.id == handlerID {
				return e.obs
			}
		}
		next = slices.Clone(*l)
	}
	h := o.vec.WithLabelValues(handlerID, o.labels[outcome])
	next = append(next, observerOf{id: handlerID, obs: h})
	o.byID[outcome].Store(&next)
	return h
}

// lagCollector exports Lag as gauges at scrape time.
type lagCollector struct{ s *Stack }

var lagDesc = prometheus.NewDesc("kafkaevents_consumer_lag", "Records between the consumer group's committed offset and the partition end.", []string{"topic", "partition"}, nil)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lags, err := c.s.Lag(ctx)
	if err != nil {
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Lag), l.Topic, fmt.Sprint(l.Partition))
	}
}

var (
	inFlightDesc = prometheus.NewDesc("kafkaevents_handler_in_flight",
		"Records taken from their partitions and not settled, by handler: running, or waiting behind an earlier record with their key.", []string{"handler"}, nil)
	oldestDesc = prometheus.NewDesc("kafkaevents_handler_oldest_in_flight_seconds",
		"How long the record handed to the handler longest ago has been running; 0 when none runs.", []string{"handler"}, nil)
	settledAboveDesc = prometheus.NewDesc("kafkaevents_partition_settled_uncommitted",
		"Records settled above the partition's committed offset, waiting for an earlier record to settle.", []string{"topic", "partition"}, nil)
	metadataDesc = prometheus.NewDesc("kafkaevents_partition_completed_map_bytes",
		"Size of the completed-offsets map in the partition's commit metadata.", []string{"topic", "partition"}, nil)
	skippedDesc = prometheus.NewDesc("kafkaevents_records_skipped_completed_total",
		"Records not handled again because the commit metadata said an earlier owner settled them.", nil, nil)
)

// concurrencyCollector exports ConcurrencyStats to Prometheus.
type concurrencyCollector struct{ s *Stack }

func (c concurrencyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inFlightDesc, oldestDesc, settledAboveDesc, metadataDesc, skippedDesc} {
		ch <- d
	}
}

func (c concurrencyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.ConcurrencyStats()
	for _, h := range st.Handlers {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(h.InFlight), h.ID)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, float64(h.OldestInFlightMs)/1000, h.ID)
	}
	for _, p := range st.Partitions {
		part := strconv.Itoa(int(p.Partition))
		ch <- prometheus.MustNewConstMetric(settledAboveDesc, prometheus.GaugeValue, float64(p.SettledAbove), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(metadataDesc, prometheus.GaugeValue, float64(p.MetadataBytes), p.Topic, part)
	}
	ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(st.SkippedCompleted))
}
