package consume

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torix/kafkaevents/internal/offsets"
)

// Stats are the counters of one handler's scheduler.
type Stats struct {
	inFlight atomic.Int64 // records taken from the partitions and not settled
	mu       sync.Mutex
	running  map[*record]struct{}                    // records handed to the router
	waited   func(handlerID string, seconds float64) // observes a wait behind a key
}

// NewStats returns the counters of a handler. waited, when not nil, is told
// how long a record waited behind an earlier record with its key, when it
// waited longer than a millisecond.
func NewStats(waited func(handlerID string, seconds float64)) *Stats {
	return &Stats{running: map[*record]struct{}{}, waited: waited}
}

// InFlight counts the records taken from their partitions and not settled:
// running, or waiting behind an earlier record with their key.
func (s *Stats) InFlight() int64 { return s.inFlight.Load() }

// Running is a record handed to the router and not settled yet.
type Running struct {
	Partition offsets.Partition
	Offset    int64
	// Started is when the record was handed to the router.
	Started time.Time
}

// Oldest returns the record handed to the router longest ago, and false
// when none runs.
func (s *Stats) Oldest() (Running, bool) {
	r, ok := s.oldestRunning()
	if !ok {
		return Running{}, false
	}
	return Running{Partition: r.claim.tp, Offset: r.hold.Offset(), Started: r.started}, true
}

// oldestRunning returns the record handed to the router longest ago.
func (s *Stats) oldestRunning() (*record, bool) {
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

// Stuck describes the records that have been in their handler for longer
// than after, by "handler {ID}"; nil when there are none.
func (d *Subscriber) Stuck(after time.Duration) map[string]string {
	now := time.Now()
	var out map[string]string
	for _, set := range d.Handlers() {
		if set.Stats == nil {
			continue
		}
		r, ok := set.Stats.Oldest()
		if !ok || now.Sub(r.Started) < after {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		tp := r.Partition
		out["handler "+set.HandlerID] = fmt.Sprintf("the record at offset %d of %s/%d has been in its handler for %s: it holds the partition's committed offset",
			r.Offset, tp.Topic, tp.Partition, now.Sub(r.Started).Truncate(time.Second))
	}
	return out
}
