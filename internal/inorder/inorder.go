// Package inorder lets the records of one partition finish out of order
// while the offset that is marked (and later committed) only moves past
// records that are all done.
//
// The retry consumer and the DLQ reprocessor read a partition themselves and
// hand some of its records to a handler that takes several at once
// (kafkaevents.WithConcurrency). [Marks] keeps their offsets in order: a
// record's offset is marked only once it and every record before it are
// done, so a crash never skips a record still owed a delivery. [Slots] bounds
// how many records of each handler run at once.
package inorder

import (
	"context"
	"sync"
)

// Marks tracks the records of one partition in the order they were added.
// Its zero value is not usable; see [NewMarks].
type Marks struct {
	mark func(next int64)

	mu      sync.Mutex
	pending []*entry      // in offset order
	moved   chan struct{} // closed when the front of pending moves
	next    int64         // the last offset marked; -1 before the first
}

type entry struct {
	off  int64
	done bool
	// settling is set while the record's hand-off is being committed in a
	// transaction that also commits the offsets (see Marks.Committable).
	settling bool
}

// NewMarks returns Marks that call mark with the offset after the last record
// done in a row at the front (the offset to commit), each time it moves.
// mark is called with the Marks' lock held, so calls come in offset order;
// it must not call back into the Marks.
func NewMarks(mark func(next int64)) *Marks {
	return &Marks{mark: mark, moved: make(chan struct{}), next: -1}
}

// Window is the most records a reader keeps added and not yet covered by a
// mark (see [Marks.Room]): one record that never finishes holds its
// partition's reading after this many more, rather than letting the list of
// finished records behind it grow without bound.
const Window = 1024

// Add registers the record at offset off, which must be above every offset
// added before, and returns the func that says it is done. Calling that func
// more than once has no further effect.
func (m *Marks) Add(off int64) (done func()) {
	mk := m.AddMark(off)
	return mk.Done
}

// Mark is one record added to [Marks].
type Mark struct {
	m *Marks
	e *entry
}

// AddMark is Add, returning the record's Mark.
func (m *Marks) AddMark(off int64) *Mark {
	e := &entry{off: off}
	m.mu.Lock()
	m.pending = append(m.pending, e)
	m.mu.Unlock()
	return &Mark{m: m, e: e}
}

// Done says the record is done; calling it more than once has no further
// effect.
func (k *Mark) Done() { k.m.done(k.e) }

// Settling counts the record as done (true) in [Marks.Committable], while a
// transaction that carries its hand-off and the offsets is being committed,
// or not any more (false) when that transaction failed.
func (k *Mark) Settling(on bool) {
	k.m.mu.Lock()
	k.e.settling = on
	k.m.mu.Unlock()
}

// Committable returns what a transaction committing now may commit, with
// the records marked settling counted as done: next, the offset after the
// last record done in a row (-1 when nothing was added or marked yet), and
// the records of [next, end) that are not done, for the commit's metadata.
func (m *Marks) Committable() (next, end int64, unsettled []int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next = m.next
	i := 0
	for ; i < len(m.pending) && (m.pending[i].done || m.pending[i].settling); i++ {
		next = m.pending[i].off + 1
	}
	end = next
	for _, e := range m.pending[i:] {
		if !e.done && !e.settling {
			unsettled = append(unsettled, e.off)
		}
		end = e.off + 1
	}
	return next, end, unsettled
}

func (m *Marks) done(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.done {
		return
	}
	e.done = true
	next := int64(-1)
	for len(m.pending) > 0 && m.pending[0].done {
		next = m.pending[0].off + 1
		m.pending[0] = nil
		m.pending = m.pending[1:]
	}
	if next >= 0 {
		m.next = next
		m.mark(next)
		close(m.moved)
		m.moved = make(chan struct{})
	}
}

// Room waits until fewer than limit records are pending, and returns nil, or
// returns ctx's error if ctx ends first.
func (m *Marks) Room(ctx context.Context, limit int) error {
	for {
		m.mu.Lock()
		n, moved := len(m.pending), m.moved
		m.mu.Unlock()
		if n < limit {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Pending returns how many records were added and are not yet covered by a
// mark.
func (m *Marks) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Slots bounds how many records of each handler run at once beside the
// reader of a partition. Its zero value is not usable; see [NewSlots].
type Slots struct {
	limit func(handlerID string) int

	mu      sync.Mutex
	slots   map[string]chan struct{}
	running sync.WaitGroup
}

// NewSlots returns Slots whose limit per handler is limit(handlerID). A nil
// limit means 1 for every handler.
func NewSlots(limit func(handlerID string) int) *Slots {
	return &Slots{limit: limit, slots: map[string]chan struct{}{}}
}

// Acquire takes one of the handler's slots when its limit is above 1,
// waiting while all are taken. ok is false for a handler that takes one
// record at a time (the caller handles the record in line) and when ctx
// ended first. release gives the slot back; call it once.
func (s *Slots) Acquire(ctx context.Context, handlerID string) (release func(), ok bool) {
	n := 1
	if s.limit != nil {
		n = s.limit(handlerID)
	}
	if n <= 1 {
		return nil, false
	}
	s.mu.Lock()
	slots := s.slots[handlerID]
	if slots == nil {
		slots = make(chan struct{}, n)
		s.slots[handlerID] = slots
	}
	s.mu.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	s.running.Add(1)
	return func() {
		<-slots
		s.running.Done()
	}, true
}

// Wait waits until every slot taken has been released.
func (s *Slots) Wait() { s.running.Wait() }
