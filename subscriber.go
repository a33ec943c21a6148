package kafkaevents

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/middleware"
)

// drainingSubscriber wraps the Kafka subscriber so that a graceful shutdown
// commits the messages whose handlers were running. watermill-kafka abandons
// a message that was handed out but not yet acknowledged as soon as the
// router closes the subscriber or cancels its context, without marking its
// offset; the router still waits for the handler, so the message was
// completed and then delivered again after the restart. Here the router's
// context and Close only make a subscription drain: the subscription
// underneath stays open until the messages in flight are acknowledged and
// their offsets marked (or the drain timeout passes), and closing it then
// commits the marked offsets.
//
// The router reads the channel of the subscription underneath directly: a
// goroutine forwarding the messages would cost each of them a hand-off
// between goroutines, a quarter of the throughput of a partition. What is in
// flight is known without it: the stack's unmarshaler (handOutUnmarshaler)
// tells offsetMarks which offset each partition hands out, and while a
// subscription drains the stack's first middleware (Stack.enter) refuses
// what it still hands out, nacking it unhandled, so that its offset stays
// unmarked for the next owner of the partition.
type drainingSubscriber struct {
	inner message.Subscriber
	// drain bounds the wait for the messages in flight. Zero means no wait.
	drain time.Duration
	// marks sees the offsets watermill-kafka hands out and marks; it must be
	// the Tracer of the subscriber underneath, and its unmarshaler must be a
	// handOutUnmarshaler of it.
	marks *offsetMarks
	// draining counts the subscriptions that drain, so that admitting a
	// message costs one atomic load while none does.
	draining atomic.Int32

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	subs      []*subscription
	watchers  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var errSubscriberClosed = errors.New("kafkaevents: subscriber is closed")

func newDrainingSubscriber(inner message.Subscriber, marks *offsetMarks, drain time.Duration) *drainingSubscriber {
	return &drainingSubscriber{inner: inner, drain: drain, marks: marks, closing: make(chan struct{})}
}

// subscription is one Subscribe call. It is a value of the context of every
// message of the subscription (set once, on the context the subscription
// underneath derives the messages' contexts from), which marks the messages
// whose offsets offsetMarks can hold.
type subscription struct {
	topic    string
	marks    *offsetMarks
	cancel   context.CancelFunc
	draining atomic.Bool
}

type subscriptionKey struct{}

// Subscribe subscribes to topic underneath with a context that ctx does not
// cancel, and returns the channel of that subscription. When ctx is done
// before Close, the subscription drains and then ends (see watch).
func (d *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errSubscriberClosed
	}
	sub := &subscription{topic: topic, marks: d.marks}
	innerCtx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), subscriptionKey{}, sub))
	sub.cancel = cancel
	d.subs = append(d.subs, sub)
	d.watchers.Add(1)
	d.mu.Unlock()
	out, err := d.inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancel()
		d.mu.Lock()
		d.subs = slices.DeleteFunc(d.subs, func(s *subscription) bool { return s == sub })
		d.mu.Unlock()
		d.watchers.Done()
		return nil, err
	}
	go d.watch(ctx, sub)
	return out, nil
}

// watch drains sub when ctx is done before Close: it refuses new deliveries,
// waits for the messages in flight to be settled, and then ends the
// subscription underneath with Close or, when Close does not come, after the
// drain timeout. The router closes the subscriber right after cancelling the
// contexts of its subscriptions, and ending one subscription early would
// make its member leave the consumer group, revoking the partitions of the
// others while their messages are still being handled.
func (d *drainingSubscriber) watch(ctx context.Context, sub *subscription) {
	defer d.watchers.Done()
	select {
	case <-ctx.Done():
	case <-d.closing:
		return // Close drains every subscription at once
	}
	d.startDraining(sub)
	d.waitSettled(sub)
	t := time.NewTimer(d.drain)
	defer t.Stop()
	select {
	case <-d.closing:
	case <-t.C:
		sub.cancel()
	}
}

func (d *drainingSubscriber) startDraining(sub *subscription) {
	if sub.draining.CompareAndSwap(false, true) {
		d.draining.Add(1)
	}
}

// refuse nacks msg if its subscription drains, and reports whether it did.
func (d *drainingSubscriber) refuse(msg *message.Message) bool {
	sub, ok := msg.Context().Value(subscriptionKey{}).(*subscription)
	if !ok || sub.marks != d.marks || !sub.draining.Load() {
		return false
	}
	msg.Nack()
	if tp, off, ok := sub.position(msg); ok {
		d.marks.refused(tp, off)
	}
	return true
}

// position returns the partition and offset of msg, a message of sub, as
// watermill-kafka put them in its context.
func (sub *subscription) position(msg *message.Message) (topicPartition, int64, bool) {
	p, ok1 := kafka.MessagePartitionFromCtx(msg.Context())
	off, ok2 := kafka.MessagePartitionOffsetFromCtx(msg.Context())
	return topicPartition{sub.topic, p}, off, ok1 && ok2
}

// waitSettled waits, at most d.drain, until the partitions of the topics of
// subs have no message in flight.
func (d *drainingSubscriber) waitSettled(subs ...*subscription) {
	if d.drain <= 0 || len(subs) == 0 {
		return
	}
	topics := make(map[string]bool, len(subs))
	for _, s := range subs {
		topics[s.topic] = true
	}
	timer := time.NewTimer(d.drain)
	defer timer.Stop()
	for {
		changed := d.marks.changes()
		if d.marks.settled(topics) {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		}
	}
}

// Close makes every subscription drain, waits for the messages in flight
// (at most the drain timeout) and then closes the subscriber underneath,
// which commits the marked offsets and leaves the group. It is idempotent; a
// call made while another is in progress waits for it, so that Stack.Close
// does not return before the offsets are committed (the router calls Close
// too, from a goroutine of its own).
func (d *drainingSubscriber) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.closing)
		subs := slices.Clone(d.subs)
		d.mu.Unlock()
		for _, sub := range subs {
			d.startDraining(sub)
		}
		d.waitSettled(subs...)
		d.watchers.Wait()
		d.closeErr = d.inner.Close()
		for _, sub := range subs {
			sub.cancel()
		}
	})
	return d.closeErr
}

// handOutUnmarshaler is the unmarshaler of the stack's subscriber: it tells
// marks which offset of its partition watermill-kafka is about to hand out
// (watermill-kafka unmarshals a record right before it hands it out, and
// hands out the next one of the partition only after this one was
// acknowledged), and unmarshals the record with Unmarshaler.
type handOutUnmarshaler struct {
	kafka.Unmarshaler
	marks *offsetMarks
}

// Unmarshal implements kafka.Unmarshaler.
func (u handOutUnmarshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	u.marks.handOut(topicPartition{rec.Topic, rec.Partition}, rec.Offset)
	return u.Unmarshaler.Unmarshal(rec)
}

// offsetMarks is a kafka.SaramaTracer that wraps the consumer group handler
// of watermill-kafka to see which offsets it marks and which partitions it
// is consuming. watermill-kafka marks a message's offset from its own
// goroutine after the acknowledgement; closing the subscriber before that
// goroutine ran would lose the mark.
//
// It is also the stack's middleware.OffsetHolder: a held offset, and every
// offset after it in its partition, is kept out of the marks (and so out of
// the commits) until the hold is released, so that the retry middleware can
// acknowledge a failed message while its retry record is still on its way.
type offsetMarks struct {
	mu      sync.Mutex
	claims  map[topicPartition]*claimState // the latest claim of each partition
	active  map[topicPartition]int         // ConsumeClaim calls in progress
	holds   int                            // open holds, all partitions
	changed chan struct{}                  // closed and replaced on a change, if watched
	watched bool                           // changes was called since the last change

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

type topicPartition struct {
	topic     string
	partition int32
}

const (
	defaultMaxHolds    = 1024
	defaultReleaseWait = 10 * time.Second
)

func newOffsetMarks() *offsetMarks {
	return &offsetMarks{
		claims: map[topicPartition]*claimState{}, active: map[topicPartition]int{},
		changed:  make(chan struct{}),
		maxHolds: defaultMaxHolds, releaseWait: defaultReleaseWait,
	}
}

// update runs f under the lock and signals a change.
func (o *offsetMarks) update(f func()) {
	o.mu.Lock()
	f()
	o.signal()
	o.mu.Unlock()
}

// signal wakes the watchers of changes; o.mu is held.
func (o *offsetMarks) signal() {
	if o.watched {
		close(o.changed)
		o.changed = make(chan struct{})
		o.watched = false
	}
}

// changes returns a channel that is closed at the next change.
func (o *offsetMarks) changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.watched = true
	return o.changed
}

// handOut records that offset off of tp is being handed out.
func (o *offsetMarks) handOut(tp topicPartition, off int64) {
	o.mu.Lock()
	if c := o.claims[tp]; c != nil {
		c.handedOut = off
	}
	o.mu.Unlock()
}

// refused records that offset off of tp was refused unhandled.
func (o *offsetMarks) refused(tp topicPartition, off int64) {
	o.update(func() {
		if c := o.claims[tp]; c != nil {
			c.refused = max(c.refused, off)
		}
	})
}

// settled reports whether no partition of topics has a message in flight:
// the last one handed out was marked (or refused). A claim that is over is
// not in o.claims any more: its session can mark nothing.
func (o *offsetMarks) settled(topics map[string]bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for tp, c := range o.claims {
		if topics[tp.topic] && !c.settled() {
			return false
		}
	}
	return true
}

// settled reports whether c has no message in flight; o.mu is held.
func (c *claimState) settled() bool {
	return c.handedOut < 0 || c.marked > c.handedOut || c.refused >= c.handedOut
}

// Hold implements middleware.OffsetHolder.
func (o *offsetMarks) Hold(msg *message.Message) middleware.OffsetHold {
	sub, ok := msg.Context().Value(subscriptionKey{}).(*subscription)
	if !ok || sub.marks != o {
		return nil
	}
	tp, off, ok := sub.position(msg)
	if !ok {
		return nil
	}
	return o.hold(tp, off)
}

// hold holds back offset off of tp, or returns nil.
func (o *offsetMarks) hold(tp topicPartition, off int64) middleware.OffsetHold {
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
func (o *offsetMarks) mark(tp topicPartition, c *claimState, next int64) {
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
	c.sess.MarkOffset(tp.topic, tp.partition, next, "")
	c.marked = next
	o.signal()
}

type offsetHold struct {
	marks    *offsetMarks
	tp       topicPartition
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
func (o *offsetMarks) WrapConsumerGroupHandler(h sarama.ConsumerGroupHandler) sarama.ConsumerGroupHandler {
	return markingHandler{ConsumerGroupHandler: h, marks: o}
}

// WrapConsumer implements kafka.SaramaTracer; it returns c.
func (o *offsetMarks) WrapConsumer(c sarama.Consumer) sarama.Consumer { return c }

// WrapPartitionConsumer implements kafka.SaramaTracer; it returns pc.
func (o *offsetMarks) WrapPartitionConsumer(pc sarama.PartitionConsumer) sarama.PartitionConsumer {
	return pc
}

// WrapSyncProducer implements kafka.SaramaTracer; it returns p.
func (o *offsetMarks) WrapSyncProducer(_ *sarama.Config, p sarama.SyncProducer) sarama.SyncProducer {
	return p
}

type markingHandler struct {
	sarama.ConsumerGroupHandler
	marks *offsetMarks
}

// ConsumeClaim runs watermill-kafka's ConsumeClaim with a session that
// honours the holds. When it returns, it waits (at most releaseWait) for the
// holds of the claim to be released, so that their offsets are marked before
// the session commits; the offsets still held then are left uncommitted and
// their messages are delivered again.
func (h markingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	o := h.marks
	tp := topicPartition{claim.Topic(), claim.Partition()}
	c := o.startClaim(tp, sess)
	err := h.ConsumerGroupHandler.ConsumeClaim(markingSession{ConsumerGroupSession: sess, marks: o, tp: tp, claim: c}, claim)
	o.endClaim(tp, c)
	return err
}

// startClaim registers a claim of tp in sess.
func (o *offsetMarks) startClaim(tp topicPartition, sess sarama.ConsumerGroupSession) *claimState {
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
func (o *offsetMarks) endClaim(tp topicPartition, c *claimState) {
	deadline := time.Now().Add(o.releaseWait)
	for {
		changed := o.changes()
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
	marks *offsetMarks
	tp    topicPartition
	claim *claimState
}

// MarkMessage marks msg, or as much as the holds of its partition allow.
func (s markingSession) MarkMessage(msg *sarama.ConsumerMessage, _ string) {
	o := s.marks
	if msg.Topic != s.tp.topic || msg.Partition != s.tp.partition {
		// Not this claim's partition (watermill-kafka never does this):
		// mark it as it is.
		s.ConsumerGroupSession.MarkMessage(msg, "")
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mark(s.tp, s.claim, msg.Offset+1)
}
