package offsets

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/txn"
)

// memberSession is a markSession of generation 7 of member "m-1".
type memberSession struct{ *markSession }

func (memberSession) GenerationID() int32 { return 7 }
func (memberSession) MemberID() string    { return "m-1" }

// commitOf returns the commit Commits reports for tp, and whether there is
// one.
func commitOf(o *Tracker, tp Partition) (txn.Commit, bool) {
	for _, c := range o.Commits() {
		if c.Topic == tp.Topic && c.Partition == tp.Partition {
			return c, true
		}
	}
	return txn.Commit{}, false
}

// TestCommitsCountSettlingHoldsAsReleased: a hold whose hand-off is in a
// transaction being committed counts as released in what the transaction
// commits, and only it: the marks themselves wait for the release, an open
// hold below still stops the commit, and a failed transaction puts the hold
// back.
func TestCommitsCountSettlingHoldsAsReleased(t *testing.T) {
	o := NewTracker(Config{Group: "g", Commit: func(context.Context) error { return nil }})
	o.cfg.ReleaseWait = 50 * time.Millisecond
	tp := Partition{"orders", 0}
	raw := &markSession{}
	c := o.startClaim(tp, memberSession{raw}, fakeClaim{initial: 10, hwm: 1 << 20})
	sess := markingSession{ConsumerGroupSession: memberSession{raw}, marks: o, tp: tp, claim: c}

	_, ok := commitOf(o, tp)
	assert.False(t, ok, "nothing marked past the start: nothing to commit")

	h12, h14 := o.Hold(tp, 12), o.Hold(tp, 14)
	require.NotNil(t, h12)
	require.NotNil(t, h14)
	for off := int64(10); off <= 15; off++ {
		markMsg(sess, off)
	}
	cm, ok := commitOf(o, tp)
	require.True(t, ok)
	assert.Equal(t, int64(12), cm.Offset, "stops at the lowest open hold")
	assert.Equal(t, "g", cm.Member.GroupID)
	assert.Equal(t, int32(7), cm.Member.GenerationID)
	assert.Equal(t, "m-1", cm.Member.MemberID)
	assert.NotEmpty(t, cm.Metadata, "the completed offsets above 12")

	h14.(*InFlight).Settling(true)
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(12), cm.Offset, "12 is open, settling 14 does not pass it")
	h12.(*InFlight).Settling(true)
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(16), cm.Offset, "both settling: the transaction commits past them")
	assert.Empty(t, cm.Metadata, "nothing unsettled below 16")
	assert.Equal(t, int64(12), raw.last(), "the marks wait for the release")

	h14.(*InFlight).Settling(false) // its transaction failed
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(14), cm.Offset, "14 open again")

	h12.Release()
	h14.Release()
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(16), cm.Offset)
	assert.Empty(t, c.settling)

	sess.Commit() // watermill-kafka's, with auto-commit off: does nothing under transactions
	o.end(tp, c)
	_, ok = commitOf(o, tp)
	assert.False(t, ok, "an ended claim commits nothing more")
}

// TestSettlingHandOffSettlesItsRecord: the transaction of a record's
// hand-off commits the offset past the record even when the record's own
// hold (a record beside others in its handler) or its acknowledgement (a
// sequential handler) has not come back yet.
func TestSettlingHandOffSettlesItsRecord(t *testing.T) {
	o := NewTracker(Config{Group: "g", Commit: func(context.Context) error { return nil }})
	tp := Partition{"orders", 0}
	raw := &markSession{}
	o.startClaim(tp, memberSession{raw}, fakeClaim{initial: 0, hwm: 1 << 20})

	// Sequential: record 0 handed off, not yet acknowledged.
	h0 := o.Hold(tp, 0)
	require.NotNil(t, h0)
	h0.(*InFlight).Settling(true)
	cm, ok := commitOf(o, tp)
	require.True(t, ok)
	assert.Equal(t, int64(1), cm.Offset, "past the record whose hand-off settles")
	h0.Release()

	// Beside others: record 1 admitted and in its handler, record 2 done.
	in1, _, err := o.Admit(tp, 1)
	require.NoError(t, err)
	in2, _, err := o.Admit(tp, 2)
	require.NoError(t, err)
	o.markNext(tp, 3)
	in2.Release()
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(1), cm.Offset, "record 1 in its handler")
	h1 := o.Hold(tp, 1)
	require.NotNil(t, h1)
	h1.(*InFlight).Settling(true)
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(3), cm.Offset, "record 1's hand-off settles it, its handler's hold with it")
	h1.(*InFlight).Settling(false)
	cm, _ = commitOf(o, tp)
	assert.Equal(t, int64(1), cm.Offset)
	in1.Release()
	h1.Release()
}
