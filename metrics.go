package kafkaevents

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StuckAfter is how long a record may stay in its handler before readiness
// reports it (in Readiness.Warnings) as stuck. A stuck record of a handler
// with a concurrency above 1 holds its partition's committed offset, and its
// key, until it returns.
const StuckAfter = 30 * time.Second

// ConcurrencyStats describes how records are handled within partitions, as
// the JSON metrics report it.
type ConcurrencyStats struct {
	// Handlers are the handlers, sorted by ID.
	Handlers []HandlerConcurrency `json:"handlers"`
	// Partitions are the partitions this instance consumes for handlers
	// with a concurrency above 1.
	Partitions []PartitionProgress `json:"partitions"`
	// SkippedCompleted counts the records skipped because the commit
	// metadata of an earlier owner said they were settled.
	SkippedCompleted int64 `json:"skippedCompleted"`
}

// HandlerConcurrency is one handler's concurrency and what it has in flight.
type HandlerConcurrency struct {
	ID          string `json:"id"`
	Concurrency int    `json:"concurrency"`
	Ordering    string `json:"ordering"`
	// InFlight counts the records taken from their partitions and not
	// settled: running, or waiting behind an earlier record with their key.
	InFlight int64 `json:"inFlight"`
	// OldestInFlightMs is how long the record handed to the handler longest
	// ago has been running; 0 when none runs.
	OldestInFlightMs int64 `json:"oldestInFlightMs"`
}

// PartitionProgress is one partition's commit progress.
type PartitionProgress struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committable is the offset the next commit carries.
	Committable int64 `json:"committable"`
	// InFlight counts the records whose offsets are held.
	InFlight int `json:"inFlight"`
	// SettledAbove counts the offsets above Committable already settled.
	SettledAbove int64 `json:"settledAbove"`
	// MetadataBytes is the size of the completed-offsets map in the
	// commit metadata.
	MetadataBytes int `json:"metadataBytes"`
}

// flowStats returns the counters of a handler's flow, made on first use.
func (s *Stack) flowStats() *flowStats {
	return newFlowStats(func(handlerID string, seconds float64) {
		s.keyWaits.WithLabelValues(handlerID).Observe(seconds)
	})
}

// concurrencyOf returns the concurrency of handler id: its WithConcurrency,
// or Config.Consumer.Concurrency for a handler added to the router directly.
func (s *Stack) concurrencyOf(id string) int {
	for _, set := range s.subscriber.flowSettings() {
		if set.handlerID == id {
			return set.n
		}
	}
	return s.cfg.Consumer.Concurrency
}

// ConcurrencyStats returns the concurrency of each handler and the commit
// progress of each partition.
func (s *Stack) ConcurrencyStats() ConcurrencyStats {
	out := ConcurrencyStats{Handlers: []HandlerConcurrency{}, Partitions: []PartitionProgress{}}
	now := time.Now()
	for _, set := range s.subscriber.flowSettings() {
		hc := HandlerConcurrency{ID: set.handlerID, Concurrency: set.n, Ordering: set.ordering.String()}
		if set.stats != nil {
			hc.InFlight = set.stats.inFlight.Load()
			if r, ok := set.stats.oldestRunning(); ok {
				hc.OldestInFlightMs = now.Sub(r.started).Milliseconds()
			}
		}
		out.Handlers = append(out.Handlers, hc)
	}
	slices.SortFunc(out.Handlers, func(a, b HandlerConcurrency) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range s.subscriber.marks.Stats() {
		out.Partitions = append(out.Partitions, PartitionProgress{
			Topic: p.Topic, Partition: p.Partition.Partition, Committable: p.Committable,
			InFlight: p.InFlight, SettledAbove: p.SettledAbove, MetadataBytes: p.MetadataBytes,
		})
	}
	out.SkippedCompleted = s.subscriber.marks.Skipped()
	return out
}

// stuckRecords describes the records that have been in their handler for
// longer than StuckAfter, by handler ID.
func (s *Stack) stuckRecords() map[string]string {
	now := time.Now()
	var out map[string]string
	for _, set := range s.subscriber.flowSettings() {
		if set.stats == nil {
			continue
		}
		r, ok := set.stats.oldestRunning()
		if !ok || now.Sub(r.started) < StuckAfter {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		tp, off := r.pf.tp, r.hold.Offset()
		out["handler "+set.handlerID] = fmt.Sprintf("the record at offset %d of %s/%d has been in its handler for %s: it holds the partition's committed offset",
			off, tp.Topic, tp.Partition, now.Sub(r.started).Truncate(time.Second))
	}
	return out
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
