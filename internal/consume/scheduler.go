package consume

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/internal/offsets"
)

// scheduler runs one subscription of a handler with a concurrency above 1. It
// reads the records watermill-kafka hands out, takes a hold on each record's
// offset (offsets.Tracker.Admit) and acknowledges it at once, so that
// watermill-kafka hands out the next record of the partition while the
// commits stay below every record that is not settled. It hands each record
// to the router as a message of its own, when no earlier record with the
// same key is still running, and settles the hold when the router
// acknowledges that message.
//
// A partition has at most Settings.Concurrency records taken and unsettled
// (running, or waiting behind an earlier record with their key). Beyond
// that, the next record watermill-kafka hands out is parked unacknowledged,
// which stops the partition (and only it) until a record settles.
type scheduler struct {
	d   *Subscriber
	sub *subscription
	set Settings
	out chan *message.Message

	mu    sync.Mutex
	parts map[int32]*claim
	// keys are the busy keys of each partition and the records waiting
	// behind them, over the partition's claims in this process: a key whose
	// record still runs from an earlier claim is busy for the next one.
	keys     map[int32]map[string][]*record
	draining bool
	stopped  bool
	stop     chan struct{}
	senders  sync.WaitGroup
	done     chan struct{} // closed when run returned
}

// Settings are the concurrency settings of one topic's handler.
type Settings struct {
	// HandlerID names the handler in Stats and in Stuck.
	HandlerID string
	// Concurrency is how many records of one partition the handler may
	// have in flight at once. Above 1 the records go through a scheduler;
	// 0 or 1 hands them to the router one at a time, as watermill-kafka
	// does.
	Concurrency int
	// Unordered lets records with the same key run at the same time. By
	// default (false) they run one at a time, in offset order; a record
	// without a key is ordered with nothing.
	Unordered bool
	// Stats counts what the handler has in flight. Required when
	// Concurrency is above 1.
	Stats *Stats
}

// nackResend is how long a record whose handler chain returned an error
// waits before it is handed to the router again, as watermill-kafka's
// NackResendSleep does for a sequential handler.
const nackResend = 100 * time.Millisecond

// claim is the scheduler's state of one claim of a partition.
type claim struct {
	tp       offsets.Partition
	revoked  <-chan struct{}
	taken    int              // records taken and not settled
	parked   *message.Message // handed out, not taken yet
	watching bool             // a goroutine waits for a budget change
}

// record is one record taken from a partition.
type record struct {
	src     *message.Message
	ctx     context.Context
	key     string
	keyed   bool
	hold    *offsets.InFlight
	claim   *claim
	taken   time.Time
	started time.Time
}

// recordContext is the context of a record handed to the router: the
// values of the context watermill-kafka gave the record, and the
// cancellation of its claim's end, so that a handler still running when its
// claim stops waiting for it (a rebalance or a stop) sees its context
// cancelled.
type recordContext struct {
	context.Context                 // the claim's end
	values          context.Context // watermill-kafka's
}

func (c recordContext) Value(key any) any { return c.values.Value(key) }

func newScheduler(d *Subscriber, sub *subscription, set Settings) *scheduler {
	return &scheduler{
		d: d, sub: sub, set: set,
		out:   make(chan *message.Message, set.Concurrency),
		parts: map[int32]*claim{},
		keys:  map[int32]map[string][]*record{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// run reads in until it is closed, then gives up the records that wait and
// closes the scheduler's channel.
func (sc *scheduler) run(in <-chan *message.Message) {
	defer close(sc.done)
	drained := sc.sub.drained
	for {
		select {
		case msg, ok := <-in:
			if !ok {
				sc.finish()
				return
			}
			sc.offer(msg)
		case <-drained:
			drained = nil
			sc.drain()
		}
	}
}

// finish ends the scheduler: the records waiting behind their key are given up
// (their offsets stay uncommitted), and the channel closes once no send is
// pending.
func (sc *scheduler) finish() {
	sc.mu.Lock()
	sc.stopped = true
	var gone []*record
	for _, cl := range sc.parts {
		gone = append(gone, sc.abandonWaiting(cl)...)
	}
	sc.mu.Unlock()
	sc.giveUp(gone)
	close(sc.stop)
	sc.senders.Wait()
	close(sc.out)
}

// drain makes the scheduler refuse what it is handed from now on, and gives up
// the records that wait behind their key: a drain waits only for the records
// whose handlers run.
func (sc *scheduler) drain() {
	sc.mu.Lock()
	sc.draining = true
	var gone []*record
	var parked []*message.Message
	for _, cl := range sc.parts {
		gone = append(gone, sc.abandonWaiting(cl)...)
		if cl.parked != nil {
			parked = append(parked, cl.parked)
			cl.parked = nil
		}
	}
	sc.mu.Unlock()
	sc.giveUp(gone)
	for _, msg := range parked {
		sc.d.Refuse(msg)
	}
}

// abandonWaiting removes the records of cl that wait behind their key; the
// keys stay busy while their records run. sc.mu is held.
func (sc *scheduler) abandonWaiting(cl *claim) []*record {
	var gone []*record
	for k, q := range sc.keys[cl.tp.Partition] {
		kept := q[:0]
		for _, r := range q {
			if r.claim == cl {
				gone = append(gone, r)
			} else {
				kept = append(kept, r)
			}
		}
		clear(q[len(kept):])
		sc.keys[cl.tp.Partition][k] = kept
	}
	cl.taken -= len(gone)
	return gone
}

// giveUp abandons the holds of records that will not be handled here.
func (sc *scheduler) giveUp(rs []*record) {
	for _, r := range rs {
		r.hold.Abandon()
		sc.set.Stats.inFlight.Add(-1)
	}
}

// offer takes msg, a record watermill-kafka hands out, or parks it.
func (sc *scheduler) offer(msg *message.Message) {
	tp, off, ok := sc.sub.position(msg)
	if !ok {
		sc.passThrough(msg)
		return
	}
	if sc.d.marks.Completed(tp, off) {
		msg.Ack() // settled before a crash or a rebalance: not handled again
		return
	}
	sc.mu.Lock()
	if sc.draining {
		sc.mu.Unlock()
		sc.d.Refuse(msg)
		return
	}
	cl := sc.parts[tp.Partition]
	if cl != nil && cl.parked != nil {
		// watermill-kafka hands out one record per partition at a time:
		// a parked one is never followed by another before it is taken.
		cl.parked = msg
		sc.mu.Unlock()
		return
	}
	ready, next := sc.take(tp, cl, msg)
	sc.mu.Unlock()
	switch next {
	case passOn:
		sc.passThrough(msg)
	case letGo:
		sc.letGo(tp, off, msg)
	}
	sc.start(ready)
}

// What take leaves to its caller, beside the record to start.
const (
	taken  = iota // taken or parked: nothing to do
	passOn        // cannot be held: handed to the router as it is
	letGo         // its claim is revoked: acknowledged unhandled (letGo)
)

// take admits msg into its claim, or parks it when the window or the
// metadata budget is full. It returns the record to start now, if any, and
// what the caller does with msg; sc.mu is held.
func (sc *scheduler) take(tp offsets.Partition, cl *claim, msg *message.Message) (ready *record, next int) {
	if cl != nil && cl.taken >= sc.set.Concurrency {
		cl.parked = msg
		return nil, taken
	}
	_, off, _ := sc.sub.position(msg)
	hold, changed, err := sc.d.marks.Admit(tp, off)
	switch {
	case errors.Is(err, offsets.ErrOverBudget) && cl != nil:
		cl.parked = msg
		sc.watchBudget(cl, changed)
		return nil, taken
	case errors.Is(err, offsets.ErrRevoked):
		return nil, letGo
	case err != nil:
		return nil, passOn
	}
	if cl == nil || cl.revoked != hold.Revoked() {
		cl = &claim{tp: tp, revoked: hold.Revoked()}
		sc.parts[tp.Partition] = cl
		go sc.watchRevoke(cl)
	}
	r := &record{
		src: msg, ctx: recordContext{Context: hold.Ended(), values: msg.Context()},
		hold: hold, claim: cl, taken: time.Now(),
	}
	if !sc.set.Unordered {
		if key, _ := kafka.MessageKeyFromCtx(msg.Context()); len(key) > 0 {
			r.key, r.keyed = string(key), true
		}
	}
	cl.taken++
	sc.set.Stats.inFlight.Add(1)
	// The hold is in place: acknowledging lets watermill-kafka mark the
	// offset (kept below the hold) and hand out the next record.
	msg.Ack()
	if r.keyed {
		keys := sc.keys[tp.Partition]
		if keys == nil {
			keys = map[string][]*record{}
			sc.keys[tp.Partition] = keys
		}
		if q, busy := keys[r.key]; busy {
			keys[r.key] = append(q, r)
			return nil, taken
		}
		keys[r.key] = nil
	}
	return r, taken
}

// letGo gives up msg, the record at off of tp handed out after its claim
// was revoked: refused first, so that its acknowledgement marks nothing,
// then acknowledged, so that watermill-kafka lets the claim go. Its offset
// stays uncommitted for the next owner.
func (sc *scheduler) letGo(tp offsets.Partition, off int64, msg *message.Message) {
	sc.d.marks.Refused(tp, off)
	msg.Ack()
}

// watchBudget retries the parked record of cl once the tracker changes
// (changed, taken when the budget refused it); sc.mu is held.
func (sc *scheduler) watchBudget(cl *claim, changed <-chan struct{}) {
	if cl.watching {
		return
	}
	cl.watching = true
	go func() {
		select {
		case <-changed:
		case <-cl.revoked:
		case <-sc.stop:
		}
		sc.mu.Lock()
		cl.watching = false
		ready := sc.takeParked(cl)
		sc.mu.Unlock()
		sc.start(ready)
	}()
}

// takeParked takes the parked record of cl if there is room; sc.mu is held.
func (sc *scheduler) takeParked(cl *claim) *record {
	msg := cl.parked
	if msg == nil || cl.taken >= sc.set.Concurrency || sc.draining || sc.stopped {
		return nil
	}
	cl.parked = nil
	tp, off, _ := sc.sub.position(msg)
	ready, next := sc.take(tp, cl, msg)
	switch next {
	case passOn:
		go sc.passThrough(msg)
	case letGo:
		go sc.letGo(tp, off, msg)
	}
	return ready
}

// watchRevoke gives up cl's waiting records, and its parked one, when its
// claim is revoked.
func (sc *scheduler) watchRevoke(cl *claim) {
	select {
	case <-cl.revoked:
	case <-sc.stop:
		return
	}
	sc.mu.Lock()
	gone := sc.abandonWaiting(cl)
	parked := cl.parked
	cl.parked = nil
	if sc.parts[cl.tp.Partition] == cl {
		delete(sc.parts, cl.tp.Partition)
	}
	sc.mu.Unlock()
	sc.giveUp(gone)
	if parked != nil {
		_, off, _ := sc.sub.position(parked)
		sc.letGo(cl.tp, off, parked)
	}
}

// start hands r to the router and settles it when the router is done.
func (sc *scheduler) start(r *record) {
	if r == nil {
		return
	}
	sc.mu.Lock()
	if sc.stopped {
		sc.mu.Unlock()
		sc.giveUp([]*record{r})
		return
	}
	sc.senders.Add(1)
	sc.mu.Unlock()
	go sc.handle(r)
}

// handle sends r to the router until its message is acknowledged, and then
// settles r. A nack (the chain failed to hand the record off) sends it again
// after nackResend, as watermill-kafka does; while the scheduler drains, or once
// the claim is revoked, a nacked record is given up.
func (sc *scheduler) handle(r *record) {
	defer sc.senders.Done()
	r.started = time.Now()
	st := sc.set.Stats
	if wait := r.started.Sub(r.taken); r.keyed && wait > time.Millisecond && st.waited != nil {
		st.waited(sc.set.HandlerID, wait.Seconds())
	}
	st.mu.Lock()
	st.running[r] = struct{}{}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.running, r)
		st.mu.Unlock()
	}()
	for resend := false; ; resend = true {
		msg := message.NewMessage(r.src.UUID, r.src.Payload)
		if resend {
			msg.Metadata = maps.Clone(r.src.Metadata)
		} else {
			// Nothing reads the acknowledged original any more: its
			// metadata is handed on without a copy.
			msg.Metadata = r.src.Metadata
		}
		msg.SetContext(r.ctx)
		select {
		case sc.out <- msg:
		case <-sc.stop:
			sc.settle(r, false)
			return
		}
		select {
		case <-msg.Acked():
			sc.settle(r, true)
			return
		case <-msg.Nacked():
		case <-sc.stop:
			// The subscription ended while the handler runs: its claim
			// ended, its context is cancelled, its offset stays
			// uncommitted.
			sc.settle(r, false)
			return
		}
		if sc.sub.draining.Load() {
			sc.settle(r, false)
			return
		}
		t := time.NewTimer(nackResend)
		select {
		case <-t.C:
		case <-r.claim.revoked:
			t.Stop()
			sc.settle(r, false)
			return
		case <-sc.stop:
			t.Stop()
			sc.settle(r, false)
			return
		}
	}
}

// settle releases (ok) or abandons r's hold, starts the next record with
// its key, and takes the parked record of its partition if there is room.
func (sc *scheduler) settle(r *record, ok bool) {
	if ok {
		r.hold.Release()
	} else {
		r.hold.Abandon()
	}
	sc.set.Stats.inFlight.Add(-1)
	cl := r.claim
	var next []*record
	sc.mu.Lock()
	cl.taken--
	if r.keyed {
		keys := sc.keys[cl.tp.Partition]
		q := keys[r.key]
		if !ok {
			// Not handled here: neither are the records of its claim
			// after it with its key, so that they are not handled before
			// it. Those of a later claim (which receives it again) go on.
			kept := q[:0]
			var gone []*record
			for _, w := range q {
				if w.claim == cl {
					gone = append(gone, w)
				} else {
					kept = append(kept, w)
				}
			}
			clear(q[len(kept):])
			q = kept
			cl.taken -= len(gone)
			defer sc.giveUp(gone)
		}
		if len(q) == 0 {
			delete(keys, r.key)
			if len(keys) == 0 {
				delete(sc.keys, cl.tp.Partition)
			}
		} else {
			next = append(next, q[0])
			q[0] = nil
			keys[r.key] = q[1:]
		}
	}
	if p := sc.takeParked(cl); p != nil {
		next = append(next, p)
	}
	sc.mu.Unlock()
	for _, n := range next {
		sc.start(n)
	}
}

// passThrough hands msg to the router as it is, without a hold: a record
// the tracker cannot hold (its partition has two claims at once during a
// rebalance, or it has no position) is handled like a sequential handler's.
func (sc *scheduler) passThrough(msg *message.Message) {
	sc.mu.Lock()
	if sc.stopped {
		sc.mu.Unlock()
		return
	}
	sc.senders.Add(1)
	sc.mu.Unlock()
	defer sc.senders.Done()
	select {
	case sc.out <- msg:
	case <-sc.stop:
	}
}
