package inorder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMarksInOrder: an offset is marked only once every record before it is
// done, whatever order they finish in.
func TestMarksInOrder(t *testing.T) {
	var marks []int64
	m := NewMarks(func(next int64) { marks = append(marks, next) })
	var done []func()
	for off := int64(10); off < 15; off++ {
		done = append(done, m.Add(off))
	}
	done[2]()
	done[1]()
	assert.Empty(t, marks, "offset 10 is not done")
	assert.Equal(t, 5, m.Pending())
	done[0]()
	assert.Equal(t, []int64{13}, marks, "10, 11 and 12 done: marked up to 13")
	done[0]()
	assert.Equal(t, []int64{13}, marks, "a second done changes nothing")
	done[4]()
	done[3]()
	assert.Equal(t, []int64{13, 15}, marks)
	assert.Zero(t, m.Pending())
}

// TestMarksConcurrent: with records finishing on many goroutines, the marks
// only ever move forward and end after the last record.
func TestMarksConcurrent(t *testing.T) {
	var marks []int64
	m := NewMarks(func(next int64) { marks = append(marks, next) })
	var wg sync.WaitGroup
	for off := range int64(1000) {
		done := m.Add(off)
		wg.Go(func() {
			time.Sleep(time.Duration(off%7) * 100 * time.Microsecond)
			done()
		})
	}
	wg.Wait()
	require.NotEmpty(t, marks)
	assert.IsIncreasing(t, marks)
	assert.Equal(t, int64(1000), marks[len(marks)-1])
}

// TestSlots: a handler with a limit of 1 is handled in line; above 1, at most
// that many at once.
func TestSlots(t *testing.T) {
	s := NewSlots(func(id string) int {
		if id == "wide" {
			return 2
		}
		return 1
	})
	_, ok := s.Acquire(t.Context(), "narrow")
	assert.False(t, ok, "one at a time: in line")
	r1, ok := s.Acquire(t.Context(), "wide")
	require.True(t, ok)
	r2, ok := s.Acquire(t.Context(), "wide")
	require.True(t, ok)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, ok = s.Acquire(ctx, "wide")
	assert.False(t, ok, "both slots taken until ctx ends")
	r1()
	r3, ok := s.Acquire(t.Context(), "wide")
	require.True(t, ok)
	r2()
	r3()
	s.Wait()

	_, ok = NewSlots(nil).Acquire(t.Context(), "any")
	assert.False(t, ok, "no limit func: one at a time")
}

// TestMarksRoom: Room waits while limit records are pending and returns once
// the front moves, or when ctx ends.
func TestMarksRoom(t *testing.T) {
	m := NewMarks(func(int64) {})
	first := m.Add(0)
	second := m.Add(1)
	require.NoError(t, m.Room(t.Context(), 3))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, m.Room(ctx, 2), context.DeadlineExceeded, "two pending, limit 2")

	second() // finished, but behind the first: still pending
	roomy := make(chan error, 1)
	go func() { roomy <- m.Room(t.Context(), 2) }()
	select {
	case err := <-roomy:
		t.Fatalf("Room returned %v while both records are pending", err)
	case <-time.After(30 * time.Millisecond):
	}
	first()
	select {
	case err := <-roomy:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Room did not return once the front moved")
	}
}

// TestMarksCommittable: a transaction commits past the records marked
// settling as if they were done, names the records done past that position,
// and goes back below a settling record whose transaction failed.
func TestMarksCommittable(t *testing.T) {
	var marked []int64
	m := NewMarks(func(next int64) { marked = append(marked, next) })
	next, end, unsettled := m.Committable()
	assert.Equal(t, int64(-1), next, "nothing added")
	assert.Equal(t, int64(-1), end)
	assert.Empty(t, unsettled)

	r10, r11, r12, r13 := m.AddMark(10), m.AddMark(11), m.AddMark(12), m.AddMark(13)
	r12.Done()
	next, end, unsettled = m.Committable()
	assert.Equal(t, []any{int64(-1), int64(14), []int64{10, 11, 13}}, []any{next, end, unsettled})

	r10.Settling(true)
	next, end, unsettled = m.Committable()
	assert.Equal(t, []any{int64(11), int64(14), []int64{11, 13}}, []any{next, end, unsettled}, "10 counts as done while its hand-off is committed")
	assert.Empty(t, marked, "settling marks nothing")

	r11.Settling(true)
	next, _, unsettled = m.Committable()
	assert.Equal(t, int64(13), next, "11 settling, 12 done")
	assert.Equal(t, []int64{13}, unsettled)
	r11.Settling(false)
	next, _, _ = m.Committable()
	assert.Equal(t, int64(11), next, "11's transaction failed")

	r10.Done()
	r11.Done()
	r13.Done()
	assert.Equal(t, []int64{11, 13, 14}, marked)
	next, end, unsettled = m.Committable()
	assert.Equal(t, []any{int64(14), int64(14), []int64(nil)}, []any{next, end, unsettled}, "everything done")
}
