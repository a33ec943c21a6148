package kafkaevents

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

// flow runs one subscription of a handler with a concurrency above 1. It
// reads the records watermill-kafka hands out, takes a hold on each record's
// offset (offsets.Tracker.Admit) and acknowledges it at once, so that
// watermill-kafka hands out the next record of the partition while the
// commits stay below every record that is not settled. It hands each record
// to the router as a message of its own, when no earlier record with the
// same key is still running, and settles the hold when the router
// acknowledges that message.
//
// A partition has at most n records taken and unsettled (running, or
// waiting behind an earlier record with their key). Beyond that, the next
// record watermill-kafka hands out is parked unacknowledged, which stops the
// partition (and only it) until a record settles.
type flow struct {
	d   *drainingSubscriber
	sub *subscription
	set flowSettings
	out chan *message.Message

	mu       sync.Mutex
	parts    map[int32]*partFlow
	draining bool
	stopped  bool
	stop     chan struct{}
	senders  sync.WaitGroup
}

// partFlow is the state of one claim of a partition.
type partFlow struct {
	tp       offsets.Partition
	revoked  <-chan struct{}
	taken    int                  // records taken and not settled
	parked   *message.Message     // handed out, not taken yet
	keys     map[string][]*record // busy keys and the records waiting behind them
	watching bool                 // a goroutine waits for a budget change
}

// record is one record taken from a partition.
type record struct {
	src     *message.Message
	ctx     context.Context
	key     string
	keyed   bool
	hold    *offsets.InFlight
	pf      *partFlow
	taken   time.Time
	started time.Time
}

func newFlow(d *drainingSubscriber, sub *subscription, set flowSettings) *flow {
	return &flow{
		d: d, sub: sub, set: set,
		out:   make(chan *message.Message, set.n),
		parts: map[int32]*partFlow{},
		stop:  make(chan struct{}),
	}
}

// run reads in until it is closed, then gives up the records that wait and
// closes the flow's channel.
func (f *flow) run(in <-chan *message.Message) {
	drained := f.sub.drained
	for {
		select {
		case msg, ok := <-in:
			if !ok {
				f.finish()
				return
			}
			f.offer(msg)
		case <-drained:
			drained = nil
			f.drain()
		}
	}
}

// finish ends the flow: the records waiting behind their key are given up
// (their offsets stay uncommitted), and the channel closes once no send is
// pending.
func (f *flow) finish() {
	f.mu.Lock()
	f.stopped = true
	var gone []*record
	for _, pf := range f.parts {
		gone = append(gone, pf.abandonWaiting()...)
	}
	f.mu.Unlock()
	f.giveUp(gone)
	close(f.stop)
	f.senders.Wait()
	close(f.out)
}

// drain makes the flow refuse what it is handed from now on, and gives up
// the records that wait behind their key: a drain waits only for the records
// whose handlers run.
func (f *flow) drain() {
	f.mu.Lock()
	f.draining = true
	var gone []*record
	var parked []*message.Message
	for _, pf := range f.parts {
		gone = append(gone, pf.abandonWaiting()...)
		if pf.parked != nil {
			parked = append(parked, pf.parked)
			pf.parked = nil
		}
	}
	f.mu.Unlock()
	f.giveUp(gone)
	for _, msg := range parked {
		f.d.refuse(msg)
	}
}

// abandonWaiting removes the records that wait behind their key; f.mu is
// held.
func (pf *partFlow) abandonWaiting() []*record {
	var gone []*record
	for k, q := range pf.keys {
		gone = append(gone, q...)
		pf.keys[k] = q[:0]
	}
	pf.taken -= len(gone)
	return gone
}

// giveUp abandons the holds of records that will not be handled here.
func (f *flow) giveUp(rs []*record) {
	for _, r := range rs {
		r.hold.Abandon()
		f.set.stats.inFlight.Add(-1)
	}
}

// offer takes msg, a record watermill-kafka hands out, or parks it.
func (f *flow) offer(msg *message.Message) {
	tp, off, ok := f.sub.position(msg)
	if !ok {
		f.passThrough(msg)
		return
	}
	if f.d.marks.Completed(tp, off) {
		msg.Ack() // settled before a crash or a rebalance: not handled again
		return
	}
	f.mu.Lock()
	if f.draining {
		f.mu.Unlock()
		f.d.refuse(msg)
		return
	}
	pf := f.parts[tp.Partition]
	if pf != nil && pf.parked != nil {
		// watermill-kafka hands out one record per partition at a time:
		// a parked one is never followed by another before it is taken.
		pf.parked = msg
		f.mu.Unlock()
		return
	}
	ready, pass := f.take(tp, pf, msg)
	f.mu.Unlock()
	if pass {
		f.passThrough(msg)
		return
	}
	f.start(ready)
}

// take admits msg into its partition's flow, or parks it when the window or
// the metadata budget is full. It returns the record to start now, if any,
// and pass when msg cannot be held and must go through unheld, one at a
// time; f.mu is held.
func (f *flow) take(tp offsets.Partition, pf *partFlow, msg *message.Message) (ready *record, pass bool) {
	if pf != nil && pf.taken >= f.set.n {
		pf.parked = msg
		return nil, false
	}
	_, off, _ := f.sub.position(msg)
	hold, err := f.d.marks.Admit(tp, off)
	switch {
	case errors.Is(err, offsets.ErrOverBudget) && pf != nil:
		pf.parked = msg
		f.watchBudget(pf)
		return nil, false
	case err != nil:
		return nil, true
	}
	if pf == nil || pf.revoked != hold.Revoked() {
		pf = &partFlow{tp: tp, revoked: hold.Revoked(), keys: map[string][]*record{}}
		f.parts[tp.Partition] = pf
		go f.watchRevoke(pf)
	}
	r := &record{
		src: msg, ctx: context.WithoutCancel(msg.Context()), hold: hold, pf: pf, taken: time.Now(),
	}
	if f.set.ordering == OrderByKey {
		if key, _ := kafka.MessageKeyFromCtx(msg.Context()); len(key) > 0 {
			r.key, r.keyed = string(key), true
		}
	}
	pf.taken++
	f.set.stats.inFlight.Add(1)
	// The hold is in place: acknowledging lets watermill-kafka mark the
	// offset (kept below the hold) and hand out the next record.
	msg.Ack()
	if r.keyed {
		if q, busy := pf.keys[r.key]; busy {
			pf.keys[r.key] = append(q, r)
			return nil, false
		}
		pf.keys[r.key] = nil
	}
	return r, false
}

// watchBudget retries the parked record of pf once the tracker changes;
// f.mu is held.
func (f *flow) watchBudget(pf *partFlow) {
	if pf.watching {
		return
	}
	pf.watching = true
	changed := f.d.marks.Changes()
	go func() {
		select {
		case <-changed:
		case <-pf.revoked:
		case <-f.stop:
		}
		f.mu.Lock()
		pf.watching = false
		ready := f.takeParked(pf)
		f.mu.Unlock()
		f.start(ready)
	}()
}

// takeParked takes the parked record of pf if there is room; f.mu is held.
func (f *flow) takeParked(pf *partFlow) *record {
	msg := pf.parked
	if msg == nil || pf.taken >= f.set.n || f.draining || f.stopped {
		return nil
	}
	pf.parked = nil
	tp, _, _ := f.sub.position(msg)
	ready, pass := f.take(tp, pf, msg)
	if pass {
		go f.passThrough(msg)
	}
	return ready
}

// watchRevoke gives up pf's waiting records, and its parked one, when its
// claim is revoked.
func (f *flow) watchRevoke(pf *partFlow) {
	select {
	case <-pf.revoked:
	case <-f.stop:
		return
	}
	f.mu.Lock()
	gone := pf.abandonWaiting()
	parked := pf.parked
	pf.parked = nil
	if f.parts[pf.tp.Partition] == pf {
		delete(f.parts, pf.tp.Partition)
	}
	f.mu.Unlock()
	f.giveUp(gone)
	if parked != nil {
		// The session is over: watermill-kafka does not mark what is
		// acknowledged now, and its claim can end.
		parked.Ack()
	}
}

// start hands r to the router and settles it when the router is done.
func (f *flow) start(r *record) {
	if r == nil {
		return
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		f.giveUp([]*record{r})
		return
	}
	f.senders.Add(1)
	f.mu.Unlock()
	go f.handle(r)
}

// handle sends r to the router until its message is acknowledged, and then
// settles r. A nack (the chain failed to hand the record off) sends it again
// after nackResend, as watermill-kafka does; while the flow drains, or once
// the claim is revoked, a nacked record is given up.
func (f *flow) handle(r *record) {
	defer f.senders.Done()
	r.started = time.Now()
	st := f.set.stats
	if wait := r.started.Sub(r.taken); r.keyed && wait > time.Millisecond && st.waited != nil {
		st.waited(f.set.handlerID, wait.Seconds())
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
		case f.out <- msg:
		case <-f.stop:
			f.settle(r, false)
			return
		}
		select {
		case <-msg.Acked():
			f.settle(r, true)
			return
		case <-msg.Nacked():
		}
		if f.sub.draining.Load() {
			f.settle(r, false)
			return
		}
		t := time.NewTimer(nackResend)
		select {
		case <-t.C:
		case <-r.pf.revoked:
			t.Stop()
			f.settle(r, false)
			return
		case <-f.stop:
			t.Stop()
			f.settle(r, false)
			return
		}
	}
}

// settle releases (ok) or abandons r's hold, starts the next record with
// its key, and takes the parked record of its partition if there is room.
func (f *flow) settle(r *record, ok bool) {
	if ok {
		r.hold.Release()
	} else {
		r.hold.Abandon()
	}
	f.set.stats.inFlight.Add(-1)
	pf := r.pf
	var next []*record
	f.mu.Lock()
	pf.taken--
	if r.keyed {
		q := pf.keys[r.key]
		switch {
		case len(q) == 0:
			delete(pf.keys, r.key)
		case ok:
			next = append(next, q[0])
			q[0] = nil
			pf.keys[r.key] = q[1:]
		default:
			// Not handled here: neither are the records after it with its
			// key, so that they are not handled before it.
			pf.taken -= len(q)
			delete(pf.keys, r.key)
			defer f.giveUp(q)
		}
	}
	if p := f.takeParked(pf); p != nil {
		next = append(next, p)
	}
	f.mu.Unlock()
	for _, n := range next {
		f.start(n)
	}
}

// passThrough hands msg to the router as it is, without a hold: a record
// the tracker cannot hold (its partition has two claims at once during a
// rebalance, or it has no position) is handled like a sequential handler's.
func (f *flow) passThrough(msg *message.Message) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.senders.Add(1)
	f.mu.Unlock()
	defer f.senders.Done()
	select {
	case f.out <- msg:
	case <-f.stop:
	}
}
