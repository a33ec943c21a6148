package growstack_test

import (
	"sync"
	"testing"

	"github.com/torix/kafkaevents/internal/growstack"
)

// deepCall uses about 4 KiB of stack.
//
//go:noinline
func deepCall(depth int) byte {
	var buf [512]byte
	buf[depth] = byte(depth)
	if depth == 0 {
		return buf[0]
	}
	return deepCall(depth-1) + buf[depth]
}

// entry wraps h as the stack's entry middleware uses a Growth.
func entry(g *growstack.Growth, h func()) func() {
	return func() {
		var mark uintptr
		mark = g.Prepare(&mark)
		h()
		g.Observe(&mark)
	}
}

// run runs h in a new goroutine, as Watermill's router runs each message.
func run(h func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h()
	}()
	wg.Wait()
}

// TestGrowthLearnsWhichHandlersNeedIt: once a handler needed more stack
// than its goroutine started with, the next messages get it before the
// handler runs and the handler's own frames are not moved any more; a
// handler that never needed more is left alone.
func TestGrowthLearnsWhichHandlersNeedIt(t *testing.T) {
	var moved []bool
	deep := entry(&growstack.Growth{}, func() {
		var mark uintptr
		at := growstack.Pos(&mark)
		deepCall(7)
		moved = append(moved, growstack.Pos(&mark) != at)
	})
	for range growstack.DecideEvery + 8*growstack.ProbeEvery {
		run(deep)
	}
	learnt, moves := moved[growstack.DecideEvery:], 0
	for _, m := range learnt {
		if m {
			moves++
		}
	}
	// Only the probes, one message in ProbeEvery, grow it themselves (and
	// now and then a preemption, which needs room too).
	if moves > len(learnt)/4 {
		t.Errorf("after %d messages, the handler's stack still grew under %d of the next %d", growstack.DecideEvery, moves, len(learnt))
	}

	// A handler that never grows the stack is left alone: every message
	// stays a probe, none has its stack grown first. (Run on the test's
	// goroutine, whose stack is large already: the no-op chain would not
	// fit a fresh goroutine's stack under the race detector, whose atomics
	// take more of it.)
	shallow, probes := &growstack.Growth{}, 0
	for range 2 * growstack.DecideEvery {
		var mark uintptr
		mark = shallow.Prepare(&mark)
		if mark != 0 {
			probes++
		}
		shallow.Observe(&mark)
	}
	if probes != 2*growstack.DecideEvery {
		t.Errorf("a handler that fits its stack had it grown for %d of %d messages", 2*growstack.DecideEvery-probes, 2*growstack.DecideEvery)
	}
}
