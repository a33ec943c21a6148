package kafkaevents

import (
	"slices"
	"strings"
	"time"

	"github.com/torix/kafkaevents/internal/consume"
)

// MaxConcurrency is the largest concurrency a handler may have: records of
// one partition in flight at once. Each of them holds its offset until it is
// settled, and the commit metadata lists the unsettled ones (see
// docs/concurrency.md): 512 keeps that list well within Kafka's default
// offset.metadata.max.bytes (4,096) even with wide gaps between the offsets.
const MaxConcurrency = 512

// Ordering says which records of one partition a handler with a concurrency
// above 1 may handle at the same time.
type Ordering int

const (
	// OrderByKey handles records with the same key one at a time, in offset
	// order, and records with different keys in parallel. A record without
	// a key is ordered with nothing: it may run beside any other. This is
	// the default.
	OrderByKey Ordering = iota
	// Unordered handles any records of the partition at the same time, up
	// to the concurrency.
	Unordered
)

// String returns "key" or "none".
func (o Ordering) String() string {
	if o == Unordered {
		return "none"
	}
	return "key"
}

// orderingOf returns the Ordering of a handler's settings.
func orderingOf(set consume.Settings) Ordering {
	if set.Unordered {
		return Unordered
	}
	return OrderByKey
}

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

// handlerStats returns new counters for a handler's scheduler, whose waits
// behind a key go to the key_wait_seconds histogram.
func (s *Stack) handlerStats() *consume.Stats {
	return consume.NewStats(func(handlerID string, seconds float64) {
		s.keyWaits.WithLabelValues(handlerID).Observe(seconds)
	})
}

// concurrencyOf returns the concurrency of handler id: its WithConcurrency,
// or Config.Consumer.Concurrency for a handler added to the router directly.
func (s *Stack) concurrencyOf(id string) int {
	for _, set := range s.subscriber.Handlers() {
		if set.HandlerID == id {
			return set.Concurrency
		}
	}
	return s.cfg.Consumer.Concurrency
}

// ConcurrencyStats returns the concurrency of each handler and the commit
// progress of each partition.
func (s *Stack) ConcurrencyStats() ConcurrencyStats {
	out := ConcurrencyStats{Handlers: []HandlerConcurrency{}, Partitions: []PartitionProgress{}}
	now := time.Now()
	for _, set := range s.subscriber.Handlers() {
		hc := HandlerConcurrency{ID: set.HandlerID, Concurrency: set.Concurrency, Ordering: orderingOf(set).String()}
		if set.Stats != nil {
			hc.InFlight = set.Stats.InFlight()
			if r, ok := set.Stats.Oldest(); ok {
				hc.OldestInFlightMs = now.Sub(r.Started).Milliseconds()
			}
		}
		out.Handlers = append(out.Handlers, hc)
	}
	slices.SortFunc(out.Handlers, func(a, b HandlerConcurrency) int { return strings.Compare(a.ID, b.ID) })
	marks := s.subscriber.Marks()
	for _, p := range marks.Stats() {
		out.Partitions = append(out.Partitions, PartitionProgress{
			Topic: p.Topic, Partition: p.Partition.Partition, Committable: p.Committable,
			InFlight: p.InFlight, SettledAbove: p.SettledAbove, MetadataBytes: p.MetadataBytes,
		})
	}
	out.SkippedCompleted = marks.Skipped()
	return out
}
