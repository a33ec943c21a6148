package delayedretry

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HandlerStats are the retry counters of one handler (or the total). The
// first four keep the NestJS package's names.
type HandlerStats struct {
	// MessagesProcessed counts deliveries that the handler completed.
	MessagesProcessed int64 `json:"messagesProcessed"`
	// MessagesDelayed counts retry records that were held until their due time.
	MessagesDelayed int64 `json:"messagesDelayed"`
	// MessagesSkipped counts failures that were not retried (permanent,
	// undecodable, retry disabled).
	MessagesSkipped int64 `json:"messagesSkipped"`
	// ErrorsEncountered counts handler failures.
	ErrorsEncountered int64 `json:"errorsEncountered"`
	// Scheduled counts retry records published.
	Scheduled int64 `json:"scheduled"`
	// Delivered counts retry records dispatched when due.
	Delivered int64 `json:"delivered"`
	// Exhausted counts messages whose attempts ran out.
	Exhausted int64 `json:"exhausted"`
	// Unroutable counts retry records that named no known handler or had
	// corrupt headers.
	Unroutable int64 `json:"unroutable"`
	// Waiting is the number of retry records read and not yet due.
	Waiting int64 `json:"waiting"`
}

// Lateness summarises how late due retries were delivered (delivery time
// minus x-retry-after) over the most recent deliveries.
type Lateness struct {
	Count int64         `json:"count"`
	Early int64         `json:"early"`
	P50   time.Duration `json:"p50Ns"`
	P99   time.Duration `json:"p99Ns"`
	Max   time.Duration `json:"maxNs"`
}

// Stats is a snapshot of the retry metrics.
type Stats struct {
	HandlerStats
	Handlers map[string]HandlerStats `json:"handlers"`
	Lateness Lateness                `json:"lateness"`
}

type counters struct {
	processed, delayed, skipped, errors, scheduled, delivered, exhausted, unroutable, waiting atomic.Int64
}

func (c *counters) snapshot() HandlerStats {
	return HandlerStats{
		MessagesProcessed: c.processed.Load(),
		MessagesDelayed:   c.delayed.Load(),
		MessagesSkipped:   c.skipped.Load(),
		ErrorsEncountered: c.errors.Load(),
		Scheduled:         c.scheduled.Load(),
		Delivered:         c.delivered.Load(),
		Exhausted:         c.exhausted.Load(),
		Unroutable:        c.unroutable.Load(),
		Waiting:           c.waiting.Load(),
	}
}

const latenessWindow = 8192

// UnknownHandler is the handler label under which Metrics counts a handler
// ID that was not declared with Expect, once one was: a retry record names
// its handler in a header that anyone who can write to a retry topic can
// set, and each value would otherwise make a series of its own.
const UnknownHandler = "unknown"

// Metrics collects the counters of a Retrier and a Consumer. It is a
// prometheus.Collector; register it on a registry of your own. The zero value
// is not usable; call NewMetrics. Safe for concurrent use.
//
// Until Expect is called, every handler ID gets counters of its own. Once it
// is, the label values are bounded: the expected handlers (whose series exist
// from the start, at 0) and UnknownHandler, whose series exist from the first
// record counted under it.
type Metrics struct {
	mu       sync.RWMutex
	handlers map[string]*counters
	expected map[string]bool // nil until Expect

	lateMu  sync.Mutex
	ring    []time.Duration
	next    int
	count   int64
	early   int64
	latHist prometheus.Histogram

	descs map[string]*prometheus.Desc
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		handlers: map[string]*counters{},
		ring:     make([]time.Duration, 0, latenessWindow),
		latHist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kafkaevents", Subsystem: "retry", Name: "lateness_seconds",
			Help:    "Delivery time of a due retry minus its x-retry-after.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		descs: map[string]*prometheus.Desc{},
	}
	for _, n := range metricNames {
		m.descs[n.name] = prometheus.NewDesc(n.name, n.help, []string{"handler"}, nil)
	}
	return m
}

// metricNames are the names of the series of Collect, in the order of the
// values there. The first and the fourth count every outcome of a handler
// (first deliveries and retries alike), so they are named for the handler.
var metricNames = []struct{ name, help string }{
	{"kafkaevents_handler_completed_total", "Deliveries the handler completed, first deliveries and retries alike."},
	{"kafkaevents_retry_messages_delayed_total", "Retry records held until their due time."},
	{"kafkaevents_retry_messages_skipped_total", "Failures not retried (permanent, undecodable, retry disabled)."},
	{"kafkaevents_handler_failures_total", "Handler failures, first deliveries and retries alike."},
	{"kafkaevents_retry_scheduled_total", "Retry records published."},
	{"kafkaevents_retry_delivered_total", "Retry records dispatched when due."},
	{"kafkaevents_retry_exhausted_total", "Messages whose retry attempts ran out."},
	{"kafkaevents_retry_unroutable_total", "Retry records with an unknown handler or corrupt headers."},
	{"kafkaevents_retry_waiting", "Retry records read and not yet due."},
}

// Expect declares the ID of a registered handler: its series exist from now
// on, at 0, and from now on a handler ID that was not expected is counted as
// UnknownHandler.
func (m *Metrics) Expect(handlerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expected == nil {
		m.expected = map[string]bool{}
		// What was counted before under IDs not expected moves to unknown.
		var unknown *counters
		for id, c := range m.handlers {
			if id != handlerID {
				if unknown == nil {
					unknown = &counters{}
					m.handlers[UnknownHandler] = unknown
				}
				unknown.add(c)
				delete(m.handlers, id)
			}
		}
	}
	m.expected[handlerID] = true
	if m.handlers[handlerID] == nil {
		m.handlers[handlerID] = &counters{}
	}
}

// Label returns the handler label Metrics counts handlerID under:
// handlerID itself, or UnknownHandler when handlers were expected and it is
// not one of them.
func (m *Metrics) Label(handlerID string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.expected != nil && !m.expected[handlerID] {
		return UnknownHandler
	}
	return handlerID
}

func (m *Metrics) of(handlerID string) *counters {
	m.mu.RLock()
	c := m.handlers[handlerID]
	if c == nil && m.expected != nil {
		c = m.handlers[UnknownHandler]
	}
	m.mu.RUnlock()
	if c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expected != nil && !m.expected[handlerID] {
		handlerID = UnknownHandler // its series from the first record
	}
	if c = m.handlers[handlerID]; c == nil {
		c = &counters{}
		m.handlers[handlerID] = c
	}
	return c
}

func (c *counters) add(o *counters) {
	c.processed.Add(o.processed.Load())
	c.delayed.Add(o.delayed.Load())
	c.skipped.Add(o.skipped.Load())
	c.errors.Add(o.errors.Load())
	c.scheduled.Add(o.scheduled.Load())
	c.delivered.Add(o.delivered.Load())
	c.exhausted.Add(o.exhausted.Load())
	c.unroutable.Add(o.unroutable.Load())
	c.waiting.Add(o.waiting.Load())
}

func (m *Metrics) observeLateness(d time.Duration) {
	m.latHist.Observe(d.Seconds())
	m.lateMu.Lock()
	defer m.lateMu.Unlock()
	m.count++
	if d < 0 {
		m.early++
	}
	if len(m.ring) < latenessWindow {
		m.ring = append(m.ring, d)
	} else {
		m.ring[m.next] = d
		m.next = (m.next + 1) % latenessWindow
	}
}

// Stats returns a snapshot: per handler, the total, and the lateness of the
// most recent deliveries.
func (m *Metrics) Stats() Stats {
	s := Stats{Handlers: map[string]HandlerStats{}}
	m.mu.RLock()
	for id, c := range m.handlers {
		h := c.snapshot()
		s.Handlers[id] = h
		s.MessagesProcessed += h.MessagesProcessed
		s.MessagesDelayed += h.MessagesDelayed
		s.MessagesSkipped += h.MessagesSkipped
		s.ErrorsEncountered += h.ErrorsEncountered
		s.Scheduled += h.Scheduled
		s.Delivered += h.Delivered
		s.Exhausted += h.Exhausted
		s.Unroutable += h.Unroutable
		s.Waiting += h.Waiting
	}
	m.mu.RUnlock()

	m.lateMu.Lock()
	sorted := slices.Clone(m.ring)
	s.Lateness.Count, s.Lateness.Early = m.count, m.early
	m.lateMu.Unlock()
	if n := len(sorted); n > 0 {
		slices.Sort(sorted)
		s.Lateness.P50 = sorted[(n-1)*50/100]
		s.Lateness.P99 = sorted[(n-1)*99/100]
		s.Lateness.Max = sorted[n-1]
	}
	return s
}

// Reset sets every counter to zero and forgets the lateness window. The
// waiting gauge is kept: it describes records still held. The series of a
// handler that is neither expected nor has records waiting are removed.
func (m *Metrics) Reset() {
	m.mu.Lock()
	for id, c := range m.handlers {
		waiting := c.waiting.Load()
		if waiting == 0 && (m.expected == nil || !m.expected[id]) {
			delete(m.handlers, id)
			continue
		}
		// The counters are zeroed in place: a waiting retry holds them and
		// decrements its gauge when it is due.
		c.processed.Store(0)
		c.delayed.Store(0)
		c.skipped.Store(0)
		c.errors.Store(0)
		c.scheduled.Store(0)
		c.delivered.Store(0)
		c.exhausted.Store(0)
		c.unroutable.Store(0)
	}
	m.mu.Unlock()
	m.lateMu.Lock()
	m.ring, m.next, m.count, m.early = m.ring[:0], 0, 0, 0
	m.lateMu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
	m.latHist.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	for id, c := range m.handlers {
		h := c.snapshot()
		vals := []int64{h.MessagesProcessed, h.MessagesDelayed, h.MessagesSkipped, h.ErrorsEncountered, h.Scheduled, h.Delivered, h.Exhausted, h.Unroutable, h.Waiting}
		for i, n := range metricNames {
			typ := prometheus.CounterValue
			if n.name == "kafkaevents_retry_waiting" {
				typ = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(m.descs[n.name], typ, float64(vals[i]), id)
		}
	}
	m.mu.RUnlock()
	m.latHist.Collect(ch)
}
