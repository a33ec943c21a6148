package keyorder

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/IBM/sarama"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/wire"
)

// OnClaim is called when a claim of tp starts, before it hands out its
// first record: it waits until the state topic is read up to its end (so
// that the keys parked by the partition's former owner are known), and
// starts delivering the records set aside behind the keys of tp that have no
// head any more, and the pending heads whose hand-off no marker confirms
// (the former owner stopped before their retry or DLQ record was
// acknowledged). It keeps trying while the state topic cannot be read, until
// revoked is closed. The returned function is called when the claim ends:
// it stops the deliveries and waits for the one in progress until deadline.
func (p *Parker) OnClaim(tp offsets.Partition, revoked <-chan struct{}) func(deadline time.Time) {
	if !p.Started() {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go func() {
		select {
		case <-revoked:
		case <-syncCtx.Done():
		}
		stopSync()
	}()
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := p.Sync(syncCtx)
		if err == nil {
			break
		}
		if syncCtx.Err() != nil {
			break
		}
		p.cfg.Logger.Error("Reading the key-order state before consuming the partition failed; trying again", err, watermill.LogFields{
			"topic": tp.Topic, "partition": tp.Partition, "state_topic": p.cfg.Topic,
		})
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-revoked:
			t.Stop()
		}
	}
	o := &owner{revoked: revoked, ctx: ctx, cancel: cancel}
	p.mu.Lock()
	p.owned[tp] = o
	for _, k := range p.unclaimedHandoffs(tp) {
		go p.forgetSync(handedOffMarker(p.cfg.Topic, k, -1, p.cfg.Now()))
	}
	for g, gr := range p.groups {
		if g.Topic == tp.Topic && g.Partition == tp.Partition {
			p.kick(g, gr)
		}
	}
	p.mu.Unlock()
	return func(deadline time.Time) {
		p.mu.Lock()
		if p.owned[tp] == o {
			delete(p.owned, tp)
		}
		p.mu.Unlock()
		waited := make(chan struct{})
		go func() {
			o.wg.Wait()
			close(waited)
		}()
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-waited:
		case <-t.C:
		}
		t.Stop()
		cancel()
		<-waited
	}
}

// kick starts delivering the records set aside behind g, when g has no
// head, this process owns g's partition and no delivery runs; p.mu is held.
func (p *Parker) kick(g Group, gr *group) {
	if gr.releasing || gr.heads > 0 || len(gr.entries) == 0 {
		return
	}
	o := p.owned[offsets.Partition{Topic: g.Topic, Partition: g.Partition}]
	if o == nil {
		return
	}
	select {
	case <-o.revoked:
		return
	default:
	}
	gr.releasing = true
	o.wg.Add(1)
	go p.releaseAll(g, o)
}

// releaseAll delivers the records set aside behind g, in offset order, one at
// a time, until g is parked again, has none left, or o's claim is revoked.
// Each record handled is tombstoned; one whose delivery parked g again
// stays, as g's new head.
func (p *Parker) releaseAll(g Group, o *owner) {
	defer o.wg.Done()
	backoff := 100 * time.Millisecond
	var again *entry // a record whose delivery was refused: delivered again
	var againOff int64
	for {
		e, off, ok := again, againOff, again != nil
		if !ok {
			e, off, ok = p.nextAside(g, o)
		}
		again = nil
		if !ok {
			return
		}
		d := wire.Delivery{
			HandlerID: g.HandlerID, Topic: g.Topic, Partition: g.Partition, Offset: off, HasOffset: true,
			Key: []byte(g.Key), Source: wire.SourceParked,
		}
		r := redeliver.Record{UUID: e.uuid, Payload: e.payload, Metadata: maps.Clone(e.headers), Delivery: d}
		p.mu.Lock()
		gen := e.gen
		p.mu.Unlock()
		err := p.cfg.Dispatcher.Deliver(o.ctx, g.HandlerID, r.Message(o.ctx))
		if err == nil {
			p.handled(g, off, e, gen, o)
			backoff = 100 * time.Millisecond
			continue
		}
		if o.ctx.Err() != nil || errors.Is(err, dispatch.ErrClosed) {
			p.stopReleasing(g)
			return
		}
		// Refused (the chain could not hand a failure off): the same
		// record again, whatever its entry became meanwhile, as
		// watermill-kafka resends a nacked record.
		again, againOff = e, off
		p.cfg.Logger.Info("Delivering a record set aside behind its key failed; trying again", watermill.LogFields{
			"handler_id": g.HandlerID, "topic": g.Topic, "partition": g.Partition, "offset": off, "err": err.Error(),
		})
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-o.revoked:
		}
		t.Stop()
		backoff = min(2*backoff, 5*time.Second)
	}
}

// handled settles e, the record at off behind g, delivered and handled
// (Deliver returned nil) while its entry was at gen. Handled as it was, it
// is forgotten. Handed off again instead (the delivery parked g behind it,
// and its retry or DLQ record was acknowledged before Deliver returned), its
// head carries it: the head holds g again, and a marker says its hand-off
// was acknowledged, so that the partition's next owner does not deliver it
// again. A marker that cannot be written leaves the head pending: delivered
// again by the next owner (at least once).
func (p *Parker) handled(g Group, off int64, e *entry, gen int, o *owner) {
	p.mu.Lock()
	gr := p.groups[g]
	cur := (*entry)(nil)
	if gr != nil {
		cur = gr.entries[off]
	}
	forget := cur == e && e.gen == gen
	marker := int64(-1)
	if !forget && cur != nil && cur.pending {
		if cur.stale {
			cur.stale = false
			gr.heads++
		}
		marker = cur.logOffset
	}
	p.mu.Unlock()
	switch {
	case forget:
		p.forget(g, off, e)
	case marker >= 0:
		err := p.cfg.Sender.SendRecord(o.ctx, handedOffMarker(p.cfg.Topic, entryKey{Group: g, Offset: off}, marker, p.cfg.Now()))
		if err != nil {
			p.cfg.Logger.Error("Writing the hand-off marker of a parked key's head failed: the partition's next owner delivers the head again", err, watermill.LogFields{
				"handler_id": g.HandlerID, "topic": g.Topic, "partition": g.Partition, "offset": off, "state_topic": p.cfg.Topic,
			})
		}
	}
}

// unclaimedHandoffs marks stale the pending heads of tp that no marker
// confirms, at the start of its claim: their records are delivered again.
// It returns the markers of tp that name no pending head, to be dropped.
// p.mu is held.
func (p *Parker) unclaimedHandoffs(tp offsets.Partition) []entryKey {
	for g, gr := range p.groups {
		if g.Topic != tp.Topic || g.Partition != tp.Partition {
			continue
		}
		for off, e := range gr.entries {
			if !e.pending || e.stale {
				continue
			}
			if at, ok := p.markers[entryKey{Group: g, Offset: off}]; !ok || at != e.logOffset {
				e.stale = true
				gr.heads--
			}
		}
	}
	var drop []entryKey
	for k, at := range p.markers {
		if k.Topic != tp.Topic || k.Partition != tp.Partition {
			continue
		}
		var e *entry
		if gr := p.groups[k.Group]; gr != nil {
			e = gr.entries[k.Offset]
		}
		if e == nil || !e.pending || e.logOffset != at {
			drop = append(drop, k)
		}
	}
	return drop
}

// nextAside returns the lowest record set aside behind g, or false, having
// stopped the delivery, when there is none to deliver now.
func (p *Parker) nextAside(g Group, o *owner) (*entry, int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gr := p.groups[g]
	if gr == nil {
		return nil, 0, false
	}
	revoked := false
	select {
	case <-o.revoked:
		revoked = true
	default:
	}
	if revoked || gr.heads > 0 || len(gr.entries) == 0 || p.owned[offsets.Partition{Topic: g.Topic, Partition: g.Partition}] != o {
		gr.releasing = false
		if len(gr.entries) == 0 {
			delete(p.groups, g)
		}
		return nil, 0, false
	}
	off := int64(-1)
	for o, e := range gr.entries {
		if !e.handled && (off < 0 || o < off) {
			off = o
		}
	}
	if off < 0 {
		// What is left was handled; its tombstones are on their way.
		gr.releasing = false
		return nil, 0, false
	}
	return gr.entries[off], off, true
}

// forget marks e, the record set aside at off behind g, handled, and writes
// its tombstone without waiting for it: the next record of g is delivered at
// once. A tombstone the broker refuses is written again until it is
// acknowledged or the Parker closes; until then the record stays in the
// state topic and, after a restart, is delivered again (at least once).
func (p *Parker) forget(g Group, off int64, e *entry) {
	p.mu.Lock()
	e.handled = true
	p.mu.Unlock()
	rec := record(p.cfg.Topic, entryKey{Group: g, Offset: off}, KindReleased, "", p.cfg.Now(), "", nil, nil)
	as, ok := p.cfg.Sender.(wire.AsyncSender)
	if !ok {
		go p.forgetSync(rec)
		return
	}
	as.SendRecordAsync(context.Background(), rec, func(err error) {
		if err != nil {
			go p.forgetSync(record(p.cfg.Topic, entryKey{Group: g, Offset: off}, KindReleased, "", p.cfg.Now(), "", nil, nil))
		}
	})
}

// forgetSync writes rec, a tombstone, until the broker acknowledges it or
// the Parker closes.
func (p *Parker) forgetSync(rec *sarama.ProducerMessage) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := p.cfg.Sender.SendRecord(context.Background(), rec)
		if err == nil {
			return
		}
		p.cfg.Logger.Error("Writing the tombstone of a delivered record set aside failed; trying again", err, watermill.LogFields{"topic": p.cfg.Topic})
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
			return
		}
	}
}

// stopReleasing marks g as not being delivered.
func (p *Parker) stopReleasing(g Group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gr := p.groups[g]; gr != nil {
		gr.releasing = false
		if len(gr.entries) == 0 {
			delete(p.groups, g)
		}
	}
}
