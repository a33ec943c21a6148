package kafkaevents

import (
	"context"
	"errors"
	"sync"
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
// context and Close only stop new deliveries: the subscription underneath
// stays open until the messages in flight are acknowledged and their offsets
// marked (or they are nacked, or the drain timeout passes), and closing it
// then commits the marked offsets.
type drainingSubscriber struct {
	inner message.Subscriber
	// drain bounds the wait for the messages in flight. Zero means no wait.
	drain time.Duration
	// marks sees the offsets watermill-kafka marks; it must be the Tracer of
	// the subscriber underneath.
	marks *offsetMarks

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	subs      sync.WaitGroup
	cancels   []context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var errSubscriberClosed = errors.New("kafkaevents: subscriber is closed")

func newDrainingSubscriber(inner message.Subscriber, marks *offsetMarks, drain time.Duration) *drainingSubscriber {
	return &drainingSubscriber{inner: inner, drain: drain, marks: marks, closing: make(chan struct{})}
}

// Subscribe subscribes to topic underneath with a context that ctx does not
// cancel, and forwards the messages until ctx is done or Close is called.
func (d *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errSubscriberClosed
	}
	d.subs.Add(1)
	innerCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancels = append(d.cancels, cancel)
	d.mu.Unlock()
	in, err := d.inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancel()
		d.subs.Done()
		return nil, err
	}
	out := make(chan *message.Message)
	go d.forward(ctx, &subscription{topic: topic, marks: d.marks}, in, out, cancel)
	return out, nil
}

// forward passes messages from in to out. When ctx is done or Close is
// called it closes out and waits for the messages it passed on to be settled.
// The subscription underneath then ends with Close, or, when only ctx is
// done, after the drain timeout: the router closes the subscriber right after
// cancelling the contexts of its subscriptions, and ending one subscription
// early would make its member leave the consumer group, revoking the
// partitions of the others while their messages are still being handled.
func (d *drainingSubscriber) forward(ctx context.Context, sub *subscription, in <-chan *message.Message, out chan<- *message.Message, cancel context.CancelFunc) {
	defer d.subs.Done()
	topic := sub.topic
	// The messages handed out and maybe not settled yet. watermill-kafka
	// hands out one message per partition at a time, so few are unsettled,
	// but behind a held offset (a retry record on its way) the acknowledged
	// ones wait for their marks: the list is pruned only when it doubled
	// since the last pruning, which keeps the cost per message constant.
	var pending []*message.Message
	prune := 64
	defer func() {
		close(out)
		d.wait(topic, pending)
		if d.isClosing() {
			return // Close ends every subscription at once
		}
		t := time.NewTimer(d.drain)
		defer t.Stop()
		select {
		case <-d.closing:
		case <-t.C:
			cancel()
		}
	}()
	for {
		select {
		case msg, ok := <-in:
			if !ok {
				return
			}
			// Marks the message as one whose offset d.marks can hold.
			msg.SetContext(context.WithValue(msg.Context(), subscriptionKey{}, sub))
			select {
			case out <- msg:
				if pending = append(pending, msg); len(pending) >= prune {
					pending = d.unsettled(topic, pending)
					prune = max(64, 2*len(pending))
				}
			case <-ctx.Done():
				return // not handed out: its offset stays unmarked
			case <-d.closing:
				return
			}
		case <-ctx.Done():
			return
		case <-d.closing:
			return
		}
	}
}

func (d *drainingSubscriber) isClosing() bool {
	select {
	case <-d.closing:
		return true
	default:
		return false
	}
}

// unsettled drops the messages that were settled.
func (d *drainingSubscriber) unsettled(topic string, ms []*message.Message) []*message.Message {
	keep := ms[:0]
	for _, m := range ms {
		if !d.settled(topic, m) {
			keep = append(keep, m)
		}
	}
	clear(ms[len(keep):])
	return keep
}

// settled reports whether m was nacked, or acknowledged and then marked, or
// acknowledged when the session that would mark it is over.
func (d *drainingSubscriber) settled(topic string, m *message.Message) bool {
	select {
	case <-m.Nacked():
		return true
	case <-m.Acked():
		return d.marks.done(topic, m)
	default:
		return false
	}
}

// wait waits for each message to be settled, at most d.drain in all.
func (d *drainingSubscriber) wait(topic string, ms []*message.Message) {
	if len(ms) == 0 || d.drain <= 0 {
		return
	}
	timer := time.NewTimer(d.drain)
	defer timer.Stop()
	for _, m := range ms {
		for {
			changed := d.marks.changes()
			if d.settled(topic, m) {
				break
			}
			select {
			case <-m.Nacked():
			case <-m.Acked():
				select {
				case <-changed:
				case <-timer.C:
					return
				}
			case <-timer.C:
				return
			}
		}
	}
}

// Close stops new deliveries, waits for the messages in flight of every
// subscription (at most the drain timeout) and then closes the subscriber
// underneath, which commits the marked offsets and leaves the group. It is
// idempotent; a call made while another is in progress waits for it, so that
// Stack.Close does not return before the offsets are committed (the router
// calls Close too, from a goroutine of its own).
func (d *drainingSubscriber) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.closing)
		d.mu.Unlock()
		d.subs.Wait()
		d.closeErr = d.inner.Close()
		d.mu.Lock()
		for _, cancel := range d.cancels {
			cancel()
		}
		d.cancels = nil
		d.mu.Unlock()
	})
	return d.closeErr
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
	next    map[topicPartition]int64       // the offset after the last one marked
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
	// held are the held offsets; want is the highest next offset
	// watermill-kafka asked to mark while some were held; marked is the
	// highest next offset marked in this claim's session (which starts from
	// the committed offset, possibly below what an earlier claim marked).
	held   map[int64]int
	want   int64
	marked int64
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
		next: map[topicPartition]int64{}, claims: map[topicPartition]*claimState{}, active: map[topicPartition]int{},
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

// done reports whether the acknowledged message m was marked, or can no
// longer be: its partition is not being consumed. A message without its
// partition and offset in the context counts as done.
func (o *offsetMarks) done(topic string, m *message.Message) bool {
	p, ok1 := kafka.MessagePartitionFromCtx(m.Context())
	off, ok2 := kafka.MessagePartitionOffsetFromCtx(m.Context())
	if !ok1 || !ok2 {
		return true
	}
	tp := topicPartition{topic, p}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next[tp] > off || o.active[tp] == 0
}

// subscription is the context value that marks the messages of the stack's
// subscriber, whose offsets offsetMarks can hold.
type subscription struct {
	topic string
	marks *offsetMarks
}

type subscriptionKey struct{}

// Hold implements middleware.OffsetHolder.
func (o *offsetMarks) Hold(msg *message.Message) middleware.OffsetHold {
	sub, ok := msg.Context().Value(subscriptionKey{}).(*subscription)
	if !ok || sub.marks != o {
		return nil
	}
	p, ok1 := kafka.MessagePartitionFromCtx(msg.Context())
	off, ok2 := kafka.MessagePartitionOffsetFromCtx(msg.Context())
	if !ok1 || !ok2 {
		return nil
	}
	return o.hold(topicPartition{sub.topic, p}, off)
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
	c.held[off]++
	o.holds++
	return &offsetHold{marks: o, tp: tp, claim: c, offset: off}
}

// minHeld returns the smallest held offset of c, or -1.
func (c *claimState) minHeld() int64 {
	lowest := int64(-1)
	for off := range c.held {
		if lowest < 0 || off < lowest {
			lowest = off
		}
	}
	return lowest
}

// mark marks next (the offset after the last message done) in c's session,
// or as much of it as the holds allow; o.mu is held.
func (o *offsetMarks) mark(tp topicPartition, c *claimState, next int64) {
	if c == nil || c.ended {
		return
	}
	if len(c.held) > 0 {
		c.want = max(c.want, next)
		next = min(next, c.minHeld())
	}
	if next <= c.marked {
		return
	}
	c.sess.MarkOffset(tp.topic, tp.partition, next, "")
	c.marked = next
	o.next[tp] = max(o.next[tp], next)
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
	c.held[h.offset]--
	if c.held[h.offset] <= 0 {
		delete(c.held, h.offset)
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
	c := &claimState{sess: sess, held: map[int64]int{}, lost: make(chan struct{})}
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
		for _, n := range c.held {
			o.holds -= n
		}
		clear(c.held)
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
