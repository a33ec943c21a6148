// Package lograte bounds how many log lines of one kind are written: the
// per-record INFO lines of retries and DLQ records stay readable when many
// records fail at once.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets a burst of lines through, then Rate lines per second on
// average, and counts the lines it held back. A nil *Limiter lets every line
// through. It is safe for concurrent use.
type Limiter struct {
	mu         sync.Mutex
	rate       float64
	burst      float64
	tokens     float64
	last       time.Time
	suppressed int
	now        func() time.Time
}

// Default rate and burst of New(0, 0).
const (
	DefaultRate  = 10
	DefaultBurst = 20
)

// New returns a Limiter of rate lines per second after a burst of burst
// lines; zero or less means DefaultRate and DefaultBurst.
func New(rate float64, burst int) *Limiter {
	if rate <= 0 {
		rate = DefaultRate
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	return &Limiter{rate: rate, burst: float64(burst), tokens: float64(burst), now: time.Now}
}

// Allow reports whether a line may be written now and, when it may, how many
// lines were held back since the last one let through (to be written with
// it, so that the log says lines are missing).
func (l *Limiter) Allow() (ok bool, suppressed int) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
