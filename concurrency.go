package kafkaevents

import (
	"sync"
	"sync/atomic"
	"time"
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

// nackResend is how long a record whose handler chain returned an error
// waits before it is handed to the router again, as watermill-kafka's
// NackResendSleep does for a sequential handler.
const nackResend = 100 * time.Millisecond

// flowSettings are the concurrency settings of one topic's handler.
type flowSettings struct {
	n         int
	ordering  Ordering
	handlerID string
	stats     *flowStats
}

// flowStats are the counters of one handler's concurrent flow.
type flowStats struct {
	inFlight atomic.Int64 // records taken from the partitions and not settled
	mu       sync.Mutex
	running  map[*record]struct{}                    // records handed to the router
	waited   func(handlerID string, seconds float64) // observes a wait behind a key
}

func newFlowStats(waited func(handlerID string, seconds float64)) *flowStats {
	return &flowStats{running: map[*record]struct{}{}, waited: waited}
}

// oldestRunning returns the record handed to the router longest ago.
func (s *flowStats) oldestRunning() (*record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest *record
	for r := range s.running {
		if oldest == nil || r.started.Before(oldest.started) {
			oldest = r
		}
	}
	return oldest, oldest != nil
}
