package lograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(2, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow(); !ok {
			t.Fatalf("line %d of the burst held back", i)
		}
	}
	for range 4 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("a line past the burst let through")
		}
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	ok, suppressed := l.Allow()
	if !ok || suppressed != 4 {
		t.Fatalf("after 500ms: ok=%v suppressed=%d, want true 4", ok, suppressed)
	}
	if ok, _ := l.Allow(); ok {
		t.Fatal("the token was spent")
	}
	var nilLimiter *Limiter
	if ok, _ := nilLimiter.Allow(); !ok {
		t.Fatal("a nil Limiter lets everything through")
	}
}
