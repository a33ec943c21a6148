package consume

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/internal/offsets"
)

// Subscriber wraps the Kafka subscriber so that a graceful shutdown
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
// flight is known without it: the stack's unmarshaler ([HandOutUnmarshaler])
// tells the offset tracker which offset each partition hands out, and while a
// subscription drains the stack's first middleware refuses ([Subscriber.Refuse])
// what it still hands out, nacking it unhandled, so that its offset stays
// unmarked for the next owner of the partition.
//
// The topics whose handler has a concurrency above 1 ([Subscriber.SetHandler])
// are read through a scheduler (scheduler.go) that hands the router several
// records of a partition at once.
//
// The zero value refuses nothing and has no handlers; build a Subscriber
// that subscribes with [NewSubscriber].
type Subscriber struct {
	inner message.Subscriber
	// drain bounds the wait for the messages in flight. Zero means no wait.
	drain time.Duration
	// marks sees the offsets watermill-kafka hands out and marks; it must be
	// the Tracer of the subscriber underneath, and its unmarshaler must be a
	// HandOutUnmarshaler of it.
	marks *offsets.Tracker
	// logger, when set, says what a drain waits for and when it gives up.
	logger watermill.LoggerAdapter
	// onSubscribe, when set, is told the topic of each subscription.
	onSubscribe func(topic string)
	// draining counts the subscriptions that drain, so that admitting a
	// message costs one atomic load while none does.
	draining atomic.Int32

	// handlers are the concurrency settings by topic, set by SetHandler;
	// def applies to the others.
	handlers map[string]Settings
	def      Settings

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	// allDraining is closed once every subscription drains: the router was
	// run with a context that is now done, and will not close the
	// subscriber itself.
	allDraining     chan struct{}
	allDrainingOnce sync.Once
	subs            []*subscription
	watchers        sync.WaitGroup
	closeOnce       sync.Once
	closeErr        error
}

// Config configures NewSubscriber.
type Config struct {
	// Drain bounds the wait for the messages in flight when a subscription
	// drains and when the Subscriber closes. Optional. Zero means no wait.
	Drain time.Duration
	// Logger says what a drain waits for and when it gives up. Optional.
	// Default: nothing is logged.
	Logger watermill.LoggerAdapter
	// OnSubscribe is told the topic of each subscription, before it starts.
	// Optional.
	OnSubscribe func(topic string)
	// Default are the concurrency settings of the topics SetHandler was not
	// called for (handlers added to the router directly).
	Default Settings
}

var errSubscriberClosed = errors.New("kafkaevents: subscriber is closed")

// NewSubscriber wraps inner, a watermill-kafka subscriber whose Tracer is
// marks and whose unmarshaler is a HandOutUnmarshaler of marks.
func NewSubscriber(inner message.Subscriber, marks *offsets.Tracker, cfg Config) *Subscriber {
	return &Subscriber{
		inner: inner, drain: cfg.Drain, marks: marks, logger: cfg.Logger, onSubscribe: cfg.OnSubscribe, def: cfg.Default,
		closing: make(chan struct{}), allDraining: make(chan struct{}),
	}
}

// Marks returns the offset tracker of the Subscriber.
func (d *Subscriber) Marks() *offsets.Tracker { return d.marks }

// subscription is one Subscribe call. It is a value of the context of every
// message of the subscription (set once, on the context the subscription
// underneath derives the messages' contexts from), which marks the messages
// whose offsets the offset tracker can hold.
type subscription struct {
	topic    string
	marks    *offsets.Tracker
	cancel   context.CancelFunc
	draining atomic.Bool
	drained  chan struct{} // closed when draining starts
	// deadline is when the drain stops waiting for the messages in flight,
	// set when it starts: one bound for the whole stop, the ends of the
	// claims included (offsets.Tracker.StopBy).
	deadline time.Time
	// sched is the subscription's scheduler, nil for a sequential handler.
	sched *scheduler
}

type subscriptionKey struct{}

// SetHandler sets the concurrency settings of topic's handler; call it
// before Subscribe.
func (d *Subscriber) SetHandler(topic string, set Settings) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.handlers == nil {
		d.handlers = map[string]Settings{}
	}
	d.handlers[topic] = set
}

// Handlers returns the concurrency settings given to SetHandler, in no
// particular order.
func (d *Subscriber) Handlers() []Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Settings, 0, len(d.handlers))
	for _, set := range d.handlers {
		out = append(out, set)
	}
	return out
}

// settingsOf returns the concurrency settings of topic, and whether they
// ask for more than one record of a partition at a time.
func (d *Subscriber) settingsOf(topic string) (Settings, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set, ok := d.handlers[topic]
	if !ok {
		set = d.def
	}
	return set, set.Concurrency > 1
}

// Subscribe subscribes to topic underneath with a context that ctx does not
// cancel, and returns the channel of that subscription. When ctx is done
// before Close, the subscription drains and then ends (see watch).
func (d *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errSubscriberClosed
	}
	sub := &subscription{topic: topic, marks: d.marks, drained: make(chan struct{})}
	innerCtx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), subscriptionKey{}, sub))
	sub.cancel = cancel
	d.subs = append(d.subs, sub)
	d.watchers.Add(1)
	d.mu.Unlock()
	if d.onSubscribe != nil {
		d.onSubscribe(topic)
	}
	out, err := d.inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancel()
		d.mu.Lock()
		d.subs = slices.DeleteFunc(d.subs, func(s *subscription) bool { return s == sub })
		d.mu.Unlock()
		d.watchers.Done()
		return nil, err
	}
	if set, ok := d.settingsOf(topic); ok {
		sc := newScheduler(d, sub, set)
		d.mu.Lock()
		sub.sched = sc
		d.mu.Unlock()
		go d.watch(ctx, sub)
		go sc.run(out)
		return sc.out, nil
	}
	go d.watch(ctx, sub)
	return out, nil
}

// watch drains sub when ctx is done before Close: it refuses new deliveries,
// waits for the messages in flight to be settled, and then ends the
// subscription underneath: with Close; once every subscription drains and
// all are settled; or, when neither comes, after the drain timeout. Router.Close
// closes the subscriber right after cancelling the contexts of its
// subscriptions, but a router whose Run context is done does not close it at
// all: it waits for the channels of its subscriptions to close. Ending one
// subscription while others still run would make its member leave the
// consumer group, revoking the partitions of the others while their messages
// are still being handled; so a subscription that drains alone (its handler
// was stopped) waits for Close or the timeout.
func (d *Subscriber) watch(ctx context.Context, sub *subscription) {
	defer d.watchers.Done()
	select {
	case <-ctx.Done():
	case <-d.closing:
		return // Close drains every subscription at once
	}
	d.startDraining(sub)
	d.waitSettled(sub)
	t := time.NewTimer(time.Until(d.deadlineOf(sub)))
	defer t.Stop()
	select {
	case <-d.closing:
	case <-d.allDraining:
		d.mu.Lock()
		subs := slices.Clone(d.subs)
		d.mu.Unlock()
		d.waitSettled(subs...)
		sub.cancel()
	case <-t.C:
		sub.cancel()
	}
}

// startDraining makes sub drain, until now plus the drain timeout.
func (d *Subscriber) startDraining(sub *subscription) {
	d.mu.Lock()
	if sub.draining.Load() {
		d.mu.Unlock()
		return
	}
	sub.deadline = time.Now().Add(d.drain)
	sub.draining.Store(true)
	d.mu.Unlock()
	// The claims of the topic that end from now on stop waiting for their
	// records at the same deadline: a stop waits once.
	d.marks.StopBy(sub.deadline, sub.topic)
	d.draining.Add(1)
	close(sub.drained)
	d.mu.Lock()
	all := int(d.draining.Load()) >= len(d.subs)
	d.mu.Unlock()
	if all {
		d.allDrainingOnce.Do(func() { close(d.allDraining) })
	}
}

// Draining reports whether some subscription drains or some claim is
// revoked: only then can Refuse refuse a message. It costs two atomic
// loads.
func (d *Subscriber) Draining() bool { return d.draining.Load() > 0 || d.marks.Revoking() }

// Refuse refuses msg, unhandled, if it is a message of a subscription that
// drains (it is nacked) or a record watermill-kafka handed out after its
// claim was revoked (it is to be acknowledged: watermill-kafka then lets the
// claim go without marking it), and reports whether it did. The offset of a
// refused message stays unmarked, for the next owner of its partition.
func (d *Subscriber) Refuse(msg *message.Message) bool {
	sub, ok := msg.Context().Value(subscriptionKey{}).(*subscription)
	if !ok || sub.marks != d.marks {
		return false
	}
	tp, off, ok := sub.position(msg)
	if !sub.draining.Load() {
		return ok && d.marks.RefuseRevoked(tp, off, msg)
	}
	msg.Nack()
	if ok {
		d.marks.Refused(tp, off)
	}
	return true
}

// position returns the partition and offset of msg, a message of sub, as
// watermill-kafka put them in its context.
func (sub *subscription) position(msg *message.Message) (offsets.Partition, int64, bool) {
	p, ok1 := kafka.MessagePartitionFromCtx(msg.Context())
	off, ok2 := kafka.MessagePartitionOffsetFromCtx(msg.Context())
	return offsets.Partition{Topic: sub.topic, Partition: p}, off, ok1 && ok2
}

// deadlineOf returns the earliest drain deadline of subs, which drain.
func (d *Subscriber) deadlineOf(subs ...*subscription) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var by time.Time
	for _, s := range subs {
		if by.IsZero() || s.deadline.Before(by) {
			by = s.deadline
		}
	}
	return by
}

// waitSettled waits, until the earliest drain deadline of subs, for the
// partitions of their topics to have no message in flight.
func (d *Subscriber) waitSettled(subs ...*subscription) {
	if d.drain <= 0 || len(subs) == 0 {
		return
	}
	topics := make(map[string]bool, len(subs))
	for _, s := range subs {
		topics[s.topic] = true
	}
	timer := time.NewTimer(time.Until(d.deadlineOf(subs...)))
	defer timer.Stop()
	for logged := false; ; logged = true {
		changed := d.marks.Changes()
		if d.marks.Settled(topics) {
			return
		}
		if !logged && d.logger != nil {
			d.logger.Info("Stopping: waiting for the messages in their handlers", watermill.LogFields{
				"topics": slices.Sorted(maps.Keys(topics)), "at_most": d.drain.String(),
			})
		}
		select {
		case <-changed:
		case <-timer.C:
			if d.logger != nil {
				d.logger.Info("Stopping: shutdown timeout passed with messages still in their handlers; their offsets stay uncommitted and they will be delivered again", watermill.LogFields{
					"topics": slices.Sorted(maps.Keys(topics)), "timeout": d.drain.String(),
				})
			}
			return
		}
	}
}

// Close makes every subscription drain, waits for the messages in flight
// (at most the drain timeout) and then closes the subscriber underneath,
// which commits the marked offsets and leaves the group. It is idempotent; a
// call made while another is in progress waits for it, so that the stack's Close
// does not return before the offsets are committed (the router calls Close
// too, from a goroutine of its own).
func (d *Subscriber) Close() error {
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
		// The schedulers end once the subscriptions underneath closed
		// their channels: nothing of them outlives Close.
		for _, sub := range subs {
			if sub.sched != nil {
				<-sub.sched.done
			}
		}
	})
	return d.closeErr
}
