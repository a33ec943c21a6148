// Package ratelog limits how often a log line is written: a line that
// anyone on the wire can cause (a forged header, say) must not let them fill
// the logs.
package ratelog

import (
	"sync"
	"time"
)

// Limiter lets one event through per Every and counts the ones it held back
// since. The zero value lets every event through; it is safe for concurrent
// use.
type Limiter struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int64
}

// Allow reports whether an event at now may be logged and, when it may, how
// many were held back since the last one that was.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
