// Package offsets tracks the offsets of a consumer group's claims so that a
// commit never passes a record that is not settled. It is the heart of the
// stack's at-least-once delivery.
//
// The rule: a partition's committed offset covers a record only once that
// record is settled, meaning handled, or its retry or DLQ record
// acknowledged by the broker. watermill-kafka marks a record's offset as soon
// as the record is acknowledged; a [Tracker] sits between it and the sarama
// session and lets every mark through except those a hold keeps back.
//
//   - A hold ([Tracker.Hold]) is taken on the offset of a record that is
//     acknowledged before it is settled (a retry record still on its way to
//     the broker). While it is open, no mark of its partition reaches the held
//     offset: marks stop just below the lowest held offset, and what was asked
//     beyond it is remembered.
//   - A mark is allowed up to, not past, the lowest open hold of its claim.
//     Releasing the last hold below it marks what was asked meanwhile.
//   - At the end of a claim (a rebalance or a shutdown), the claim waits at
//     most [Config.ReleaseWait] for its holds to be released, so that their
//     offsets are marked before the session commits. A hold still open then
//     is lost ([middleware.OffsetHold.Lost] is closed): its offset and every
//     later one stay uncommitted, and the next owner of the partition
//     receives them again.
//
// The Tracker also knows which offset of each partition was handed out last
// ([Tracker.HandOut]), so that a graceful shutdown can wait until every
// record in flight is settled ([Tracker.Settled]).
package offsets

import (
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/middleware"
)

// Config tunes a [Tracker].
type Config struct {
	// MaxHolds caps the holds open at once over every partition; beyond it
	// Hold returns nil. Optional. Default: 1024.
	MaxHolds int
	// ReleaseWait bounds how long the end of a claim waits for its holds to
	// be released. Optional. Zero means no wait. Default: none (zero); the
	// stack sets the smaller of the shutdown timeout and half the rebalance
	// timeout.
	ReleaseWait time.Duration
}

// DefaultMaxHolds is the default of [Config.MaxHolds].
const DefaultMaxHolds = 1024

func (c *Config) setDefaults() {
	if c.MaxHolds <= 0 {
		c.MaxHolds = DefaultMaxHolds
	}
	if c.ReleaseWait < 0 {
		c.ReleaseWait = 0
	}
}

// Tracker is a kafka.SaramaTracer (see watermill-kafka) that wraps the
// consumer group handler of watermill-kafka to see which offsets it marks and
// which partitions it is consuming, and holds marks back as the package
// documentation says. Create it with [NewTracker]; it is safe for concurrent
// use.
type Tracker struct {
	mu      sync.Mutex
	claims  map[Partition]*claimState // the latest claim of each partition
	active  map[Partition]int         // ConsumeClaim calls in progress
	holds   int                       // open holds, all partitions
	changed chan struct{}             // closed and replaced on a change, if watched
	watched bool                      // changes was called since the last change

	// maxHolds caps the open holds; Hold returns nil beyond it, and the
	// hand-off waits for its record instead.
	maxHolds int
	// releaseWait bounds how long the end of a claim waits for its holds
	// to be released, so that their offsets are committed.
	releaseWait time.Duration
}

// claimState is one ConsumeClaim of a partition: its session and its holds.
type claimState struct {
	sess sarama.ConsumerGroupSession
	// held are the held offsets in ascending order, one entry per hold
	// (holds arrive in offset order, so adding one is an append and the
	// lowest is the first); want is the highest next offset watermill-kafka
	// asked to mark while some were held; marked is the highest next offset
	// marked in this claim's session (which starts from the committed
	// offset, possibly below what an earlier claim marked).
	held   []int64
	want   int64
	marked int64
	// handedOut is the offset handed out last, refused the highest offset
	// refused unhandled while draining; -1 for none.
	handedOut, refused int64
	// lost is closed when the claim ends.
	lost  chan struct{}
	ended bool
}

// Partition names one partition of a topic.
type Partition struct {
	Topic     string
	Partition int32
}

// NewTracker returns a Tracker with no claims.
func NewTracker(cfg Config) *Tracker {
	cfg.setDefaults()
	return &Tracker{
		claims: map[Partition]*claimState{}, active: map[Partition]int{},
		changed:  make(chan struct{}),
		maxHolds: cfg.MaxHolds, releaseWait: cfg.ReleaseWait,
	}
}

// update runs f under the lock and signals a change.
func (o *Tracker) update(f func()) {
	o.mu.Lock()
	f()
	o.signal()
	o.mu.Unlock()
}

// signal wakes the watchers of changes; o.mu is held.
func (o *Tracker) signal() {
	if o.watched {
		close(o.changed)
		o.changed = make(chan struct{})
		o.watched = false
	}
}

// Changes returns a channel that is closed at the next change of a claim:
// a mark, a hold released, a claim started or ended.
func (o *Tracker) Changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.watched = true
	return o.changed
}

// HandOut records that offset off of tp is being handed out to a handler.
func (o *Tracker) HandOut(tp Partition, off int64) {
	o.mu.Lock()
	if c := o.claims[tp]; c != nil {
		c.handedOut = off
	}
	o.mu.Unlock()
}

// Refused records that offset off of tp was refused unhandled (nacked
// while draining); it is not waited for.
func (o *Tracker) Refused(tp Partition, off int64) {
	o.update(func() {
		if c := o.claims[tp]; c != nil {
			c.refused = max(c.refused, off)
		}
	})
}

// Settled reports whether no partition of topics has a message in flight:
// the last one handed out was marked (or refused). A claim that is over is
// not in o.claims any more: its session can mark nothing.
func (o *Tracker) Settled(topics map[string]bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for tp, c := range o.claims {
		if topics[tp.Topic] && !c.settled() {
			return false
		}
	}
	return true
}

// settled reports whether c has no message in flight; o.mu is held.
func (c *claimState) settled() bool {
	return c.handedOut < 0 || c.marked > c.handedOut || c.refused >= c.handedOut
}

// Hold holds back offset off of tp, and with it every later offset of tp,
// from the marks until the hold is released. It returns nil, and holds
// nothing, when tp has no claim, two claims at once, MaxHolds holds are
// open, or off was marked already: the caller must then settle the record
// before it acknowledges it.
func (o *Tracker) Hold(tp Partition, off int64) middleware.OffsetHold {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.claims[tp]
	// Two claims of one partition at once (a rebalance of two members of
	// this process) leave it unclear whose session marks the message: no
	// hold then.
	if c == nil || c.ended || o.active[tp] != 1 || o.holds >= o.maxHolds || c.marked > off {
		return nil
	}
	c.held = slices.Insert(c.held, heldIndex(c.held, off), off)
	o.holds++
	return &offsetHold{marks: o, tp: tp, claim: c, offset: off}
}

// heldIndex returns where off goes in held: after every entry ≤ off. Holds
// come in offset order, so that is nearly always the end.
func heldIndex(held []int64, off int64) int {
	i := len(held)
	for i > 0 && held[i-1] > off {
		i--
	}
	return i
}

// mark marks next (the offset after the last message done) in c's session,
// or as much of it as the holds allow; o.mu is held.
func (o *Tracker) mark(tp Partition, c *claimState, next int64) {
	if c == nil || c.ended {
		return
	}
	if len(c.held) > 0 {
		c.want = max(c.want, next)
		next = min(next, c.held[0])
	}
	if next <= c.marked {
		return
	}
	c.sess.MarkOffset(tp.Topic, tp.Partition, next, "")
	c.marked = next
	o.signal()
}

type offsetHold struct {
	marks    *Tracker
	tp       Partition
	claim    *claimState
	offset   int64
	released bool
}

// Release implements middleware.OffsetHold.
func (h *offsetHold) Release() {
	o := h.marks
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	c := h.claim
	if c.ended {
		return // counted out when the claim ended
	}
	o.holds--
	if i, ok := slices.BinarySearch(c.held, h.offset); ok {
		c.held = slices.Delete(c.held, i, i+1)
	}
	o.mark(h.tp, c, c.want)
	o.signal()
}

// Lost implements middleware.OffsetHold.
func (h *offsetHold) Lost() <-chan struct{} { return h.claim.lost }

// WrapConsumerGroupHandler implements kafka.SaramaTracer.
func (o *Tracker) WrapConsumerGroupHandler(h sarama.ConsumerGroupHandler) sarama.ConsumerGroupHandler {
	return markingHandler{ConsumerGroupHandler: h, marks: o}
}

// WrapConsumer implements kafka.SaramaTracer; it returns c.
func (o *Tracker) WrapConsumer(c sarama.Consumer) sarama.Consumer { return c }

// WrapPartitionConsumer implements kafka.SaramaTracer; it returns pc.
func (o *Tracker) WrapPartitionConsumer(pc sarama.PartitionConsumer) sarama.PartitionConsumer {
	return pc
}

// WrapSyncProducer implements kafka.SaramaTracer; it returns p.
func (o *Tracker) WrapSyncProducer(_ *sarama.Config, p sarama.SyncProducer) sarama.SyncProducer {
	return p
}

type markingHandler struct {
	sarama.ConsumerGroupHandler
	marks *Tracker
}

// ConsumeClaim runs watermill-kafka's ConsumeClaim with a session that
// honours the holds. When it returns, it waits (at most releaseWait) for the
// holds of the claim to be released, so that their offsets are marked before
// the session commits; the offsets still held then are left uncommitted and
// their messages are delivered again.
func (h markingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	o := h.marks
	tp := Partition{claim.Topic(), claim.Partition()}
	c := o.startClaim(tp, sess)
	err := h.ConsumerGroupHandler.ConsumeClaim(markingSession{ConsumerGroupSession: sess, marks: o, tp: tp, claim: c}, claim)
	o.endClaim(tp, c)
	return err
}

// startClaim registers a claim of tp in sess.
func (o *Tracker) startClaim(tp Partition, sess sarama.ConsumerGroupSession) *claimState {
	c := &claimState{sess: sess, lost: make(chan struct{}), handedOut: -1, refused: -1}
	o.update(func() {
		o.claims[tp] = c
		o.active[tp]++
	})
	return c
}

// endClaim waits (at most releaseWait) for the holds of c to be released,
// so that their offsets are marked before the session commits, and then
// ends c: the holds still open are lost.
func (o *Tracker) endClaim(tp Partition, c *claimState) {
	deadline := time.Now().Add(o.releaseWait)
	for {
		changed := o.Changes()
		o.mu.Lock()
		n := len(c.held)
		o.mu.Unlock()
		if n == 0 || !time.Now().Before(deadline) {
			break
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
	o.update(func() {
		c.ended = true
		// The holds still open are lost: their offsets stay uncommitted.
		o.holds -= len(c.held)
		c.held = nil
		close(c.lost)
		if o.claims[tp] == c {
			delete(o.claims, tp)
		}
		o.active[tp]--
		if o.active[tp] <= 0 {
			delete(o.active, tp)
		}
	})
}

type markingSession struct {
	sarama.ConsumerGroupSession
	marks *Tracker
	tp    Partition
	claim *claimState
}

// MarkMessage marks msg, or as much as the holds of its partition allow.
func (s markingSession) MarkMessage(msg *sarama.ConsumerMessage, _ string) {
	o := s.marks
	if msg.Topic != s.tp.Topic || msg.Partition != s.tp.Partition {
		// Not this claim's partition (watermill-kafka never does this):
		// mark it as it is.
		s.ConsumerGroupSession.MarkMessage(msg, "")
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mark(s.tp, s.claim, msg.Offset+1)
}
