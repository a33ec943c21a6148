package kafkaevents

import (
	"context"
	"fmt"
	"maps"
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
	for _, c := range []prometheus.Collector{s.retryStats, s.dlqStats, s.durations, s.keyWaits, lagCollector{s}, concurrencyCollector{s}} {
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
// handler ID or a few, so the maps are copied on the rare miss and read
// without a lock.
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
