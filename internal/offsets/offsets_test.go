package offsets

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// markSession is a sarama.ConsumerGroupSession that records MarkOffset.
type markSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	marks []int64
}

func (s *markSession) MarkOffset(_ string, _ int32, offset int64, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, offset)
}

func (s *markSession) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) == 0 {
		return -1
	}
	return s.marks[len(s.marks)-1]
}

func (s *markSession) Context() context.Context { return context.Background() }

// startClaim starts a claim of tp on a recording session, and returns the
// recording session, the claim and the session watermill-kafka would get.
func startClaim(o *Tracker, tp Partition) (*markSession, *claimState, markingSession) {
	raw := &markSession{}
	c := o.startClaim(tp, raw)
	return raw, c, markingSession{ConsumerGroupSession: raw, marks: o, tp: tp, claim: c}
}

func markMsg(sess markingSession, offset int64) {
	sess.MarkMessage(&sarama.ConsumerMessage{Topic: sess.tp.Topic, Partition: sess.tp.Partition, Offset: offset}, "")
}

// TestOffsetHoldsKeepMarksBack drives the holds the retry hand-off takes
// through a claim: marks stop below the lowest held offset, releasing moves
// them on to what watermill-kafka asked for, and the holds still open when
// the claim ends are lost (not counted any more, their offsets unmarked).
func TestOffsetHoldsKeepMarksBack(t *testing.T) {
	o := NewTracker(Config{})
	o.releaseWait = 50 * time.Millisecond
	tp := Partition{"orders", 0}
	raw, c, sess := startClaim(o, tp)

	markMsg(sess, 0)
	assert.Equal(t, int64(1), raw.last(), "no hold: marked at once")

	h2 := o.Hold(tp, 2)
	require.NotNil(t, h2)
	h4 := o.Hold(tp, 4)
	require.NotNil(t, h4)
	for off := int64(1); off <= 6; off++ {
		markMsg(sess, off)
	}
	assert.Equal(t, int64(2), raw.last(), "marks stop at the lowest held offset")
	assert.Nil(t, o.Hold(tp, 1), "an offset already marked cannot be held")

	h4.Release()
	assert.Equal(t, int64(2), raw.last(), "offset 2 is still held")
	h2.Release()
	assert.Equal(t, int64(7), raw.last(), "every hold released: marked up to what was asked")
	h2.Release() // a second release does nothing
	assert.Equal(t, 0, o.holds)

	o.maxHolds = 1
	h8 := o.Hold(tp, 8)
	require.NotNil(t, h8)
	assert.Nil(t, o.Hold(tp, 9), "beyond maxHolds the caller waits for its record")
	markMsg(sess, 8)
	markMsg(sess, 9)
	assert.Equal(t, int64(8), raw.last())

	select {
	case <-h8.Lost():
		t.Fatal("lost before the claim ended")
	default:
	}
	o.endClaim(tp, c)
	select {
	case <-h8.Lost():
	default:
		t.Fatal("a hold open at the end of the claim is lost")
	}
	assert.Equal(t, 0, o.holds, "the lost hold is not counted any more")
	h8.Release()
	assert.Equal(t, int64(8), raw.last(), "releasing a lost hold marks nothing: offset 8 is delivered again")
	assert.Equal(t, 0, o.holds)
	assert.Nil(t, o.Hold(tp, 10), "no claim, no hold")
}

// TestOffsetHoldsInAnyOrder: holds that come out of offset order, or twice
// for one offset (a redelivery handed off again), keep the marks below the
// lowest until each of them is released.
func TestOffsetHoldsInAnyOrder(t *testing.T) {
	o := NewTracker(Config{})
	tp := Partition{"orders", 2}
	raw, _, sess := startClaim(o, tp)

	h5 := o.Hold(tp, 5)
	h3 := o.Hold(tp, 3)
	h3again := o.Hold(tp, 3)
	h7 := o.Hold(tp, 7)
	for _, h := range []any{h5, h3, h3again, h7} {
		require.NotNil(t, h)
	}
	assert.Equal(t, []int64{3, 3, 5, 7}, sess.claim.held)
	markMsg(sess, 9)
	assert.Equal(t, int64(3), raw.last(), "marks stop at the lowest held offset")

	h3.Release()
	markMsg(sess, 10)
	assert.Equal(t, int64(3), raw.last(), "offset 3 is still held once")
	h5.Release()
	assert.Equal(t, int64(3), raw.last())
	h3again.Release()
	assert.Equal(t, int64(7), raw.last(), "now 7 is the lowest held")
	h7.Release()
	assert.Equal(t, int64(11), raw.last(), "every hold released: marked up to what was asked")
	assert.Empty(t, sess.claim.held)
	assert.Equal(t, 0, o.holds)
}

// TestClaimEndWaitsForHolds: a hold released while the claim ends is marked
// before the claim is over.
func TestClaimEndWaitsForHolds(t *testing.T) {
	o := NewTracker(Config{})
	o.releaseWait = 5 * time.Second
	tp := Partition{"orders", 1}
	raw, c, sess := startClaim(o, tp)
	h := o.Hold(tp, 0)
	require.NotNil(t, h)
	markMsg(sess, 0)
	assert.Equal(t, int64(-1), raw.last())

	go func() {
		time.Sleep(100 * time.Millisecond)
		h.Release()
	}()
	start := time.Now()
	o.endClaim(tp, c)
	assert.Less(t, time.Since(start), 4*time.Second, "the end of the claim waited for the release, not the timeout")
	assert.Equal(t, int64(1), raw.last(), "the released offset was marked before the claim ended")
}

// TestDrainWaitsForWhatWasHandedOut: a partition has a message in flight
// from the moment watermill-kafka unmarshals it until its offset is marked,
// or it is refused while draining, or its claim ends; a held offset keeps
// the message in flight until the hold is released.
func TestDrainWaitsForWhatWasHandedOut(t *testing.T) {
	o := NewTracker(Config{})
	o.releaseWait = 0
	orders := map[string]bool{"orders": true}
	tp0, tp1 := Partition{"orders", 0}, Partition{"orders", 1}
	other := Partition{"payments", 0}
	_, c0, sess0 := startClaim(o, tp0)
	_, c1, _ := startClaim(o, tp1)
	_, cOther, _ := startClaim(o, other)
	assert.True(t, o.Settled(orders), "nothing handed out yet")

	o.HandOut(tp0, 5)
	assert.False(t, o.Settled(orders), "offset 5 handed out, not marked")
	markMsg(sess0, 5)
	assert.True(t, o.Settled(orders), "offset 5 marked")

	h := o.Hold(tp0, 6)
	require.NotNil(t, h)
	o.HandOut(tp0, 6)
	markMsg(sess0, 6)
	assert.False(t, o.Settled(orders), "offset 6 acknowledged but held: its mark is still to come")
	h.Release()
	assert.True(t, o.Settled(orders), "the hold released: offset 6 marked")

	o.HandOut(tp1, 0)
	assert.False(t, o.Settled(orders))
	o.Refused(tp1, 0)
	assert.True(t, o.Settled(orders), "the message refused while draining is not waited for")

	o.HandOut(other, 3)
	assert.True(t, o.Settled(orders), "another topic's partition does not count")
	assert.False(t, o.Settled(map[string]bool{"payments": true}))
	o.endClaim(other, cOther)
	assert.True(t, o.Settled(map[string]bool{"payments": true}), "a claim that ended can mark nothing more")

	o.HandOut(tp1, 1)
	assert.False(t, o.Settled(orders))
	o.endClaim(tp1, c1)
	o.endClaim(tp0, c0)
	assert.True(t, o.Settled(orders))
}
