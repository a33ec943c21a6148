package offsets

import (
	"context"
	"errors"
	"slices"
	"strings"
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
	meta  string
}

func (s *markSession) MarkOffset(_ string, _ int32, offset int64, meta string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, offset)
	s.meta = meta
}

func (s *markSession) ResetOffset(_ string, _ int32, offset int64, meta string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, offset)
	s.meta = meta
}

func (s *markSession) metadata() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta
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

// fakeClaim is a sarama.ConsumerGroupClaim with an initial offset and a
// high-water mark.
type fakeClaim struct {
	sarama.ConsumerGroupClaim
	initial, hwm int64
}

func (c fakeClaim) InitialOffset() int64       { return c.initial }
func (c fakeClaim) HighWaterMarkOffset() int64 { return c.hwm }

// end ends claim c of tp as ConsumeClaim does once watermill-kafka's
// ConsumeClaim returned.
func (o *Tracker) end(tp Partition, c *claimState) {
	o.revoke(tp, c)
	o.endClaim(tp, c)
	o.finishClaim(tp, c)
}

// startClaim starts a claim of tp on a recording session, and returns the
// recording session, the claim and the session watermill-kafka would get.
func startClaim(o *Tracker, tp Partition) (*markSession, *claimState, markingSession) {
	raw := &markSession{}
	c := o.startClaim(tp, raw, fakeClaim{hwm: 1 << 20})
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
	o.cfg.ReleaseWait = 50 * time.Millisecond
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

	o.cfg.MaxHolds = 1
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
	o.end(tp, c)
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
	o.cfg.ReleaseWait = 5 * time.Second
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
	o.end(tp, c)
	assert.Less(t, time.Since(start), 4*time.Second, "the end of the claim waited for the release, not the timeout")
	assert.Equal(t, int64(1), raw.last(), "the released offset was marked before the claim ended")
}

// TestDrainWaitsForWhatWasHandedOut: a partition has a message in flight
// from the moment watermill-kafka unmarshals it until its offset is marked,
// or it is refused while draining, or its claim ends; a held offset keeps
// the message in flight until the hold is released.
func TestDrainWaitsForWhatWasHandedOut(t *testing.T) {
	o := NewTracker(Config{})
	o.cfg.ReleaseWait = 0
	orders := map[string]bool{"orders": true}
	tp0, tp1 := Partition{"orders", 0}, Partition{"orders", 1}
	other := Partition{"payments", 0}
	_, c0, sess0 := startClaim(o, tp0)
	_, c1, _ := startClaim(o, tp1)
	_, cOther, _ := startClaim(o, other)
	assert.True(t, o.Settled(orders), "nothing handed out yet")

	o.HandOut(tp0, 5, nil)
	assert.False(t, o.Settled(orders), "offset 5 handed out, not marked")
	markMsg(sess0, 5)
	assert.True(t, o.Settled(orders), "offset 5 marked")

	h := o.Hold(tp0, 6)
	require.NotNil(t, h)
	o.HandOut(tp0, 6, nil)
	markMsg(sess0, 6)
	assert.False(t, o.Settled(orders), "offset 6 acknowledged but held: its mark is still to come")
	h.Release()
	assert.True(t, o.Settled(orders), "the hold released: offset 6 marked")

	o.HandOut(tp1, 0, nil)
	assert.False(t, o.Settled(orders))
	o.Refused(tp1, 0)
	assert.True(t, o.Settled(orders), "the message refused while draining is not waited for")

	o.HandOut(other, 3, nil)
	assert.True(t, o.Settled(orders), "another topic's partition does not count")
	assert.False(t, o.Settled(map[string]bool{"payments": true}))
	o.end(other, cOther)
	assert.True(t, o.Settled(map[string]bool{"payments": true}), "a claim that ended can mark nothing more")

	o.HandOut(tp1, 1, nil)
	assert.False(t, o.Settled(orders))
	o.end(tp1, c1)
	o.end(tp0, c0)
	assert.True(t, o.Settled(orders))
}

// TestAdmittedRecordsCommitOnlyWhatIsSettled: records admitted beside each
// other keep the mark at the lowest unsettled one, whatever order they
// finish in; the metadata lists what is still unsettled above it.
func TestAdmittedRecordsCommitOnlyWhatIsSettled(t *testing.T) {
	o := NewTracker(Config{MaxHolds: 1})
	tp := Partition{"orders", 0}
	raw, c, sess := startClaim(o, tp)
	var inflight []*InFlight
	for off := int64(0); off < 10; off++ {
		o.HandOut(tp, off, nil)
		h, _, err := o.Admit(tp, off)
		require.NoError(t, err, "Admit is not capped by MaxHolds")
		inflight = append(inflight, h)
		markMsg(sess, off)
	}
	assert.Equal(t, int64(-1), raw.last(), "offset 0 is in flight: nothing marked")
	for _, i := range []int{9, 3, 4, 5, 1} {
		inflight[i].Release()
	}
	assert.Equal(t, int64(-1), raw.last())
	o.flush(tp, c)
	assert.Equal(t, int64(0), raw.last(), "the flush pushes the metadata with the same offset")
	w, ok := DecodeMetadata(raw.metadata(), 0)
	require.True(t, ok)
	for off := int64(0); off < 12; off++ {
		assert.Equal(t, slices.Contains([]int64{1, 3, 4, 5, 9}, off), w.Settled(off), "offset %d", off)
	}
	assert.False(t, o.Settled(map[string]bool{"orders": true}))

	inflight[0].Release()
	assert.Equal(t, int64(0), raw.last(), "admitted records give the session their marks at the flush")
	o.flush(tp, c)
	assert.Equal(t, int64(2), raw.last(), "0 and 1 settled: marked up to 2")
	inflight[2].Abandon()
	inflight[2].Release() // after Abandon, nothing
	for _, i := range []int{6, 7, 8} {
		inflight[i].Release()
	}
	o.flush(tp, c)
	assert.Equal(t, int64(2), raw.last(), "an abandoned record is never committed")
	assert.True(t, o.Settled(map[string]bool{"orders": true}), "a drain does not wait for an abandoned record")

	st := o.Stats()
	require.Len(t, st, 1)
	assert.Equal(t, int64(2), st[0].Committable)
	assert.Equal(t, 0, st[0].InFlight)
	assert.Equal(t, int64(7), st[0].SettledAbove)

	o.end(tp, c)
	select {
	case <-inflight[2].Revoked():
	default:
		t.Fatal("the end of the claim revokes its records")
	}
}

// TestAdmitStaysWithinTheBudget: past the metadata budget, Admit refuses
// until the committed offset moves.
func TestAdmitStaysWithinTheBudget(t *testing.T) {
	o := NewTracker(Config{MetadataBudget: 60})
	tp := Partition{"orders", 0}
	raw, c, sess := startClaim(o, tp)
	var admitted []*InFlight
	off := int64(0)
	for ; ; off += 1000 {
		h, _, err := o.Admit(tp, off)
		if err != nil {
			require.ErrorIs(t, err, ErrOverBudget)
			break
		}
		admitted = append(admitted, h)
		markMsg(sess, off)
	}
	require.Greater(t, len(admitted), 2)
	o.flush(tp, c)
	assert.NotEmpty(t, raw.metadata())
	assert.LessOrEqual(t, len(raw.metadata()), 60)
	assert.Equal(t, int64(0), raw.last(), "offset 0 unsettled: nothing committed past it")
	for _, h := range admitted[1:] {
		h.Release()
	}
	h, _, err := o.Admit(tp, off)
	require.NoError(t, err, "settled records leave the map: room again")
	h.Release()
	admitted[0].Release()
	o.flush(tp, c)
	assert.Equal(t, off-1000+1, raw.last(), "everything settled: marked past the last record")
}

// TestCompletedRecordsAreSkippedOnTheNextClaim: the metadata of the last
// commit tells the next claim which records were settled.
func TestCompletedRecordsAreSkippedOnTheNextClaim(t *testing.T) {
	tp := Partition{"orders", 0}
	meta := EncodeMetadata(100, 5101, []int64{100, 2000})
	o := NewTracker(Config{Committed: func(p Partition) (int64, string, error) {
		require.Equal(t, tp, p)
		return 100, meta, nil
	}})
	c := o.startClaim(tp, &markSession{}, fakeClaim{initial: 100, hwm: 6000})
	skipped := 0
	for off := int64(100); off < 5200; off++ {
		if o.Completed(tp, off) {
			skipped++
		}
	}
	assert.Equal(t, 4999, skipped)
	assert.Equal(t, int64(4999), o.Skipped())
	assert.Nil(t, c.skip, "the window is dropped once passed")

	other := NewTracker(Config{Committed: func(Partition) (int64, string, error) { return 100, "{not ours}", nil }})
	other.startClaim(tp, &markSession{}, fakeClaim{initial: 100, hwm: 6000})
	assert.False(t, other.Completed(tp, 150), "metadata of another client is ignored")

	moved := NewTracker(Config{Committed: func(Partition) (int64, string, error) { return 90, meta, nil }})
	moved.startClaim(tp, &markSession{}, fakeClaim{initial: 100, hwm: 6000})
	assert.False(t, moved.Completed(tp, 150), "metadata of another offset is ignored")
}

// TestHoldsStayWithinTheMetadataBudget: the holds of retry and DLQ
// hand-offs (Hold) count against the metadata budget like admitted records:
// 1,024 holds 20,000 offsets apart never make the metadata pass it; the
// hold that would is refused (its hand-off is then settled before the
// record is acknowledged).
func TestHoldsStayWithinTheMetadataBudget(t *testing.T) {
	o := NewTracker(Config{})
	tp := Partition{"orders", 0}
	_, c, sess := startClaim(o, tp)
	refused := 0
	for i := range int64(DefaultMaxHolds) {
		off := i * 20000
		h := o.Hold(tp, off)
		markMsg(sess, off) // acknowledged: the mark asks past it
		if h == nil {
			refused++
			continue
		}
		o.mu.Lock()
		n := len(c.metadata())
		o.mu.Unlock()
		require.LessOrEqual(t, n, DefaultMetadataBudget, "hold %d", i)
	}
	assert.Positive(t, refused, "the holds that would pass the budget are refused")
	assert.Less(t, refused, DefaultMaxHolds, "the others are taken")
}

// TestMetadataIsTrustedOnlyWithinThePartition: metadata naming offsets at
// or past the partition's high-water mark at claim start, longer than the
// budget, or not decoding is ignored; metadata within it is used.
func TestMetadataIsTrustedOnlyWithinThePartition(t *testing.T) {
	tp := Partition{"orders", 0}
	claimWith := func(meta string, hwm int64) *claimState {
		o := NewTracker(Config{Committed: func(Partition) (int64, string, error) { return 10, meta, nil }})
		return o.startClaim(tp, &markSession{}, fakeClaim{initial: 10, hwm: hwm})
	}
	ok := EncodeMetadata(10, 20, []int64{10, 15})
	assert.NotNil(t, claimWith(ok, 20).skip, "a window below the high-water mark is used")
	assert.Nil(t, claimWith(ok, 19).skip, "a window past the high-water mark is not")
	assert.Nil(t, claimWith(ok, 10).skip, "nor one on a partition with nothing past the committed offset")
	assert.Nil(t, claimWith(EncodeMetadata(10, 1_000_010, []int64{10}), 200).skip, "a forged window is not")
	assert.Nil(t, claimWith("kv1"+strings.Repeat("A", 3100), 1<<40).skip, "metadata over the budget is not")
	assert.Nil(t, claimWith("{not ours}", 200).skip, "another client's metadata is not")
}

// TestAdmitOverBudgetMissesNoRelease: the channel Admit returns with
// ErrOverBudget is the one the next change closes, even when that change
// comes before the caller waits on it.
func TestAdmitOverBudgetMissesNoRelease(t *testing.T) {
	o := NewTracker(Config{MetadataBudget: 60})
	tp := Partition{"orders", 0}
	_, _, sess := startClaim(o, tp)
	var holds []*InFlight
	var changed <-chan struct{}
	for off := int64(0); ; off += 1000 {
		h, ch, err := o.Admit(tp, off)
		markMsg(sess, off)
		if errors.Is(err, ErrOverBudget) {
			changed = ch
			break
		}
		require.NoError(t, err)
		holds = append(holds, h)
	}
	holds[0].Release() // before anyone waits
	select {
	case <-changed:
	default:
		t.Fatal("the release after the refusal is seen by its channel")
	}
}
