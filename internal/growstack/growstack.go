// Package growstack grows the stack of the goroutine a message runs in at
// the entry of the handler chain, for handlers that grew it before.
//
// Watermill runs each message in a new goroutine, which starts small (2 KiB
// unless the runtime saw larger stacks on average) and grows by copying all
// its frames and adjusting every pointer into them, at a cost that rises
// with the number of frames. The router and the stack's middlewares use
// about 1 KiB of it, so nearly any real handler (decoding JSON, logging, a
// database call) grows it once or twice, deep in the chain. Growing it at
// the entry, where it holds three frames, costs less: on real Kafka the CPU
// per message of figure 1's JSON-decoding handler fell from 49 to 37 µs,
// and that of figure 2's handler, which reads the retry count of every
// message, from 23 to about 19.5 µs (BENCHMARKS.md).
// A handler that fits in the small stack (figure 1's no-op handler) is left
// alone: growing its stack at the entry cost it about 1 µs per message
// (the fresh-goroutine chain went from 2.45 to 3.3 µs), which is why
// [Growth] keeps checking whether the handler needs it.
package growstack

import (
	"sync/atomic"
	"unsafe"
)

// Growth decides, for one router handler, whether the stack of its message
// goroutine is grown at the entry of the chain. The zero value is ready to
// use; it is safe for concurrent use.
//
// Use it as the stack's entry middleware does, with a variable of the
// caller's frame that lives across the handler:
//
//	var mark uintptr
//	mark = g.Prepare(&mark)
//	out, err := h(msg)
//	g.Observe(&mark)
type Growth struct {
	// needed is set while most messages grew the stack.
	needed atomic.Bool
	seq    atomic.Uint32 // messages seen while needed was set
	probes atomic.Uint32 // messages run without growing the stack first
	grown  atomic.Uint32 // of the probes since the last decision, those that grew it
}

const (
	// ProbeEvery is how often a message runs without the stack grown
	// first while the growth is needed, to see whether the handler still
	// needs it.
	ProbeEvery = 16
	// DecideEvery is how many probes each decision looks at.
	DecideEvery = 32
)

// Prepare grows the stack when most messages of this handler grew it (all
// but one in ProbeEvery) and returns 0; for the other messages, the probes,
// it returns the address of mark, a variable of the caller's frame that
// holds the result until Observe.
func (g *Growth) Prepare(mark *uintptr) uintptr {
	if g.needed.Load() && g.seq.Add(1)%ProbeEvery != 0 {
		grow()
		return 0
	}
	return Pos(mark)
}

// Observe counts a probe (*mark, which Prepare returned, is not 0), and
// whether the stack grew during the handler: then mark moved with the copy
// (a shrink by the garbage collector moves it too, rarely). Every
// DecideEvery probes, the growth is needed when more than half of them grew
// it: a handler that fits in the small stack, and only rarely grows it, is
// left alone.
func (g *Growth) Observe(mark *uintptr) {
	if *mark == 0 {
		return
	}
	if *mark != Pos(mark) {
		g.grown.Add(1)
	}
	if g.probes.Add(1)%DecideEvery == 0 {
		g.needed.Store(g.grown.Swap(0) > DecideEvery/2)
	}
}

// Pos returns the address of a variable on the stack; it changes when the
// goroutine's stack grows, since growing copies the stack.
func Pos(p *uintptr) uintptr {
	return uintptr(unsafe.Pointer(p)) //nolint:gosec // only compared, never turned back into a pointer
}

// grow makes sure the calling goroutine has room for a 3 KiB frame: a
// goroutine that starts with a 2 or 4 KiB stack grows to 8 KiB in it. It
// does nothing else (growstack.s: an assembly function with a 3 KiB frame
// and no body, so there is nothing to zero).
func grow()
