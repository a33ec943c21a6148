package kafkaevents

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

func markMsg(sess markingSession, offset int64) {
	sess.MarkMessage(&sarama.ConsumerMessage{Topic: sess.tp.topic, Partition: sess.tp.partition, Offset: offset}, "")
}

// TestOffsetHoldsKeepMarksBack drives the holds the retry hand-off takes
// through a claim: marks stop below the lowest held offset, releasing moves
// them on to what watermill-kafka asked for, and the holds still open when
// the claim ends are lost (not counted any more, their offsets unmarked).
func TestOffsetHoldsKeepMarksBack(t *testing.T) {
	o := newOffsetMarks()
	o.releaseWait = 50 * time.Millisecond
	tp := topicPartition{"orders", 0}
	raw := &markSession{}
	c := o.startClaim(tp, raw)
	sess := markingSession{ConsumerGroupSession: raw, marks: o, tp: tp, claim: c}

	markMsg(sess, 0)
	assert.Equal(t, int64(1), raw.last(), "no hold: marked at once")

	h2 := o.hold(tp, 2)
	require.NotNil(t, h2)
	h4 := o.hold(tp, 4)
	require.NotNil(t, h4)
	for off := int64(1); off <= 6; off++ {
		markMsg(sess, off)
	}
	assert.Equal(t, int64(2), raw.last(), "marks stop at the lowest held offset")
	assert.Nil(t, o.hold(tp, 1), "an offset already marked cannot be held")

	h4.Release()
	assert.Equal(t, int64(2), raw.last(), "offset 2 is still held")
	h2.Release()
	assert.Equal(t, int64(7), raw.last(), "every hold released: marked up to what was asked")
	h2.Release() // a second release does nothing
	assert.Equal(t, 0, o.holds)

	o.maxHolds = 1
	h8 := o.hold(tp, 8)
	require.NotNil(t, h8)
	assert.Nil(t, o.hold(tp, 9), "beyond maxHolds the caller waits for its record")
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
	assert.Nil(t, o.hold(tp, 10), "no claim, no hold")
}

// TestClaimEndWaitsForHolds: a hold released while the claim ends is marked
// before the claim is over.
func TestClaimEndWaitsForHolds(t *testing.T) {
	o := newOffsetMarks()
	o.releaseWait = 5 * time.Second
	tp := topicPartition{"orders", 1}
	raw := &markSession{}
	c := o.startClaim(tp, raw)
	sess := markingSession{ConsumerGroupSession: raw, marks: o, tp: tp, claim: c}
	h := o.hold(tp, 0)
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
