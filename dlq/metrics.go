package dlq

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torix/kafkaevents/wire"
)

// Stats is a snapshot of the DLQ counters.
type Stats struct {
	// MessagesStored counts records written to the DLQ.
	MessagesStored int64 `json:"messagesStored"`
	// MessagesReprocessed counts reprocessed records the handler completed.
	MessagesReprocessed int64 `json:"messagesReprocessed"`
	// MessagesSkipped counts records of other topics passed over by runs.
	MessagesSkipped int64 `json:"messagesSkipped"`
	// MessagesFailed counts reprocessed records that failed again.
	MessagesFailed int64 `json:"messagesFailed"`
	// MessagesParked counts records not dispatched because their
	// x-reprocess-count reached the limit.
	MessagesParked int64 `json:"messagesParked"`
	// ByReason counts stored records per x-dlq-reason.
	ByReason map[string]int64 `json:"byReason"`
	// ByTopic counts stored records per original topic.
	ByTopic map[string]int64 `json:"byTopic"`
}

// UnknownTopic is the topic label under which Metrics counts a record whose
// original topic was not declared with ExpectTopic, once one was: the
// original topic of a retry record is a header that anyone who can write to
// a retry topic can set.
const UnknownTopic = "unknown"

// Metrics collects the DLQ counters. It is a prometheus.Collector. The zero
// value is not usable; call NewMetrics. Safe for concurrent use.
//
// Until ExpectTopic is called, every original topic gets series of its own.
// Once it is, the topic label values are bounded: the expected topics and
// UnknownTopic. The reason label is the Reason the stack (or a handler,
// with wire.WithReason) chose, never a header. The series of the expected topics exist from the start, at 0.
type Metrics struct {
	mu                                                   sync.Mutex
	reprocessed, skipped, failed, parked                 int64
	byReasonTopic                                        map[[2]string]int64
	expected                                             map[string]bool // nil until ExpectTopic
	storedDesc, reprocDesc, skipDesc, failDesc, parkDesc *prometheus.Desc
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		byReasonTopic: map[[2]string]int64{},
		storedDesc:    prometheus.NewDesc("kafkaevents_dlq_messages_stored_total", "Records written to the DLQ.", []string{"topic", "reason"}, nil),
		reprocDesc:    prometheus.NewDesc("kafkaevents_dlq_messages_reprocessed_total", "Reprocessed records the handler completed.", nil, nil),
		skipDesc:      prometheus.NewDesc("kafkaevents_dlq_messages_skipped_total", "Records of other topics passed over by reprocess runs.", nil, nil),
		failDesc:      prometheus.NewDesc("kafkaevents_dlq_messages_failed_total", "Reprocessed records that failed again.", nil, nil),
		parkDesc:      prometheus.NewDesc("kafkaevents_dlq_messages_parked_total", "Records not reprocessed because they reached the reprocess limit.", nil, nil),
	}
}

// ExpectTopic declares a topic the service consumes: its series exist from
// now on, at 0, one per reason, and from now on a topic that was not
// expected is counted as UnknownTopic.
func (m *Metrics) ExpectTopic(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expected == nil {
		m.expected = map[string]bool{}
		// What was counted before under other topics moves to unknown.
		for k, n := range m.byReasonTopic {
			if k[0] != topic {
				delete(m.byReasonTopic, k)
				m.byReasonTopic[[2]string{UnknownTopic, k[1]}] += n
			}
		}
	}
	m.expected[topic] = true
	m.zeroSeries()
}

// zeroSeries makes the series of the expected topics exist, at 0 when they
// are new; those of UnknownTopic exist from the first record counted there.
func (m *Metrics) zeroSeries() {
	if m.expected == nil {
		return
	}
	for topic := range m.expected {
		for _, r := range wire.Reasons {
			k := [2]string{topic, string(r)}
			m.byReasonTopic[k] += 0
		}
	}
}

func (m *Metrics) stored(topic string, reason wire.Reason) {
	m.mu.Lock()
	if m.expected != nil && !m.expected[topic] {
		topic = UnknownTopic
	}
	m.byReasonTopic[[2]string{topic, string(reason)}]++
	m.mu.Unlock()
}

func (m *Metrics) add(reprocessed, skipped, failed, parked int64) {
	m.mu.Lock()
	m.reprocessed += reprocessed
	m.skipped += skipped
	m.failed += failed
	m.parked += parked
	m.mu.Unlock()
}

// Stats returns a snapshot.
func (m *Metrics) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{
		MessagesReprocessed: m.reprocessed, MessagesSkipped: m.skipped,
		MessagesFailed: m.failed, MessagesParked: m.parked,
		ByReason: map[string]int64{}, ByTopic: map[string]int64{},
	}
	for _, r := range wire.Reasons {
		s.ByReason[string(r)] = 0
	}
	for k, n := range m.byReasonTopic {
		s.MessagesStored += n
		s.ByTopic[k[0]] += n
		s.ByReason[k[1]] += n
	}
	return s
}

// Reset sets every counter to zero and removes the series of the topics
// that were not expected.
func (m *Metrics) Reset() {
	m.mu.Lock()
	m.reprocessed, m.skipped, m.failed, m.parked = 0, 0, 0, 0
	m.byReasonTopic = map[[2]string]int64{}
	m.zeroSeries()
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.storedDesc, m.reprocDesc, m.skipDesc, m.failDesc, m.parkDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.byReasonTopic {
		ch <- prometheus.MustNewConstMetric(m.storedDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(m.reprocDesc, prometheus.CounterValue, float64(m.reprocessed))
	ch <- prometheus.MustNewConstMetric(m.skipDesc, prometheus.CounterValue, float64(m.skipped))
	ch <- prometheus.MustNewConstMetric(m.failDesc, prometheus.CounterValue, float64(m.failed))
	ch <- prometheus.MustNewConstMetric(m.parkDesc, prometheus.CounterValue, float64(m.parked))
}
