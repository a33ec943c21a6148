package kafkaevents

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
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
	go d.forward(ctx, topic, in, out, cancel)
	return out, nil
}

// forward passes messages from in to out. When ctx is done or Close is
// called it closes out and waits for the messages it passed on to be settled.
// The subscription underneath then ends with Close, or, when only ctx is
// done, after the drain timeout: the router closes the subscriber right after
// cancelling the contexts of its subscriptions, and ending one subscription
// early would make its member leave the consumer group, revoking the
// partitions of the others while their messages are still being handled.
func (d *drainingSubscriber) forward(ctx context.Context, topic string, in <-chan *message.Message, out chan<- *message.Message, cancel context.CancelFunc) {
	defer d.subs.Done()
	// watermill-kafka hands out one message per partition at a time, so
	// the messages not yet settled are few.
	var pending []*message.Message
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
			select {
			case out <- msg:
				pending = append(d.unsettled(topic, pending), msg)
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
type offsetMarks struct {
	mu      sync.Mutex
	next    map[topicPartition]int64 // the offset after the last one marked
	claims  map[topicPartition]int   // ConsumeClaim calls in progress
	changed chan struct{}            // closed and replaced on a change, if watched
	watched bool                     // changes was called since the last change
}

type topicPartition struct {
	topic     string
	partition int32
}

func newOffsetMarks() *offsetMarks {
	return &offsetMarks{next: map[topicPartition]int64{}, claims: map[topicPartition]int{}, changed: make(chan struct{})}
}

func (o *offsetMarks) update(f func()) {
	o.mu.Lock()
	f()
	if o.watched {
		close(o.changed)
		o.changed = make(chan struct{})
		o.watched = false
	}
	o.mu.Unlock()
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
	return o.next[tp] > off || o.claims[tp] == 0
}

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

func (h markingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	tp := topicPartition{claim.Topic(), claim.Partition()}
	h.marks.update(func() { h.marks.claims[tp]++ })
	defer h.marks.update(func() {
		h.marks.claims[tp]--
		if h.marks.claims[tp] <= 0 {
			delete(h.marks.claims, tp)
		}
	})
	return h.ConsumerGroupHandler.ConsumeClaim(markingSession{ConsumerGroupSession: sess, marks: h.marks}, claim)
}

type markingSession struct {
	sarama.ConsumerGroupSession
	marks *offsetMarks
}

func (s markingSession) MarkMessage(msg *sarama.ConsumerMessage, metadata string) {
	s.ConsumerGroupSession.MarkMessage(msg, metadata)
	tp := topicPartition{msg.Topic, msg.Partition}
	s.marks.update(func() {
		if msg.Offset+1 > s.marks.next[tp] {
			s.marks.next[tp] = msg.Offset + 1
		}
	})
}
