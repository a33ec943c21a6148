package offsets

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/internal/txn"
	"github.com/torix/kafkaevents/wire"
)

// commitEndTimeout bounds the transaction that commits a claim's offsets at
// its end when its deadline has passed already.
const commitEndTimeout = 5 * time.Second

// Settling implements txn.Hold: while a transaction carrying the record
// that replaces the held one is being committed, [Tracker.Commits] counts
// the hold as released, so that the transaction commits the offset past it
// together with its record. The hold itself stays open until Release.
func (h *InFlight) Settling(on bool) {
	o := h.marks
	o.mu.Lock()
	defer o.mu.Unlock()
	c := h.claim
	if h.released || c.ended || h.settling == on {
		return
	}
	h.settling = on
	if on {
		i, _ := slices.BinarySearch(c.settling, h.offset)
		c.settling = slices.Insert(c.settling, i, h.offset)
		return
	}
	c.unsettle(h.offset)
}

// unsettle removes one entry of off from c.settling; o.mu is held.
func (c *claimState) unsettle(off int64) {
	if i, ok := slices.BinarySearch(c.settling, off); ok {
		c.settling = slices.Delete(c.settling, i, i+1)
	}
}

// Commits implements txn.Source: the offset and metadata of each claim in
// progress, with the holds that are settling counted as released, and the
// member of the claim's session. A claim that marked nothing past the
// offset it started at is left out, so that its committed metadata stays
// until it has something to replace it with.
func (o *Tracker) Commits() []txn.Commit {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]txn.Commit, 0, len(o.claims))
	for tp, c := range o.claims {
		if c.ended || c.marked < 0 || o.active[tp] != 1 {
			continue
		}
		next, meta := c.committable()
		if next <= c.start && meta == "" {
			continue
		}
		out = append(out, txn.Commit{
			Member: &sarama.ConsumerGroupMetadata{
				GroupID: o.cfg.Group, GenerationID: c.sess.GenerationID(), MemberID: c.sess.MemberID(),
			},
			Topic: tp.Topic, Partition: tp.Partition, Offset: next, Metadata: meta,
		})
	}
	return out
}

// committable returns the offset and metadata that c commits when its
// settling holds are released; o.mu is held. A record whose hand-off is
// settling counts as done whatever else holds it: the hold of a record
// beside others in its handler, or its acknowledgement, may not have come
// back from the handler yet when the transaction starts, and the
// transaction must commit the offset past the record with its successor.
func (c *claimState) committable() (int64, string) {
	want := c.want
	if n := len(c.settling); n > 0 {
		want = max(want, c.settling[n-1]+1)
	}
	next := want
	if c.refusedFrom >= 0 {
		next = min(next, c.refusedFrom)
	}
	open := c.held
	if len(c.settling) > 0 {
		open = make([]int64, 0, len(c.held))
		for _, off := range c.held {
			if _, settling := slices.BinarySearch(c.settling, off); !settling {
				open = append(open, off)
			}
		}
	}
	if len(open) > 0 {
		next = min(next, open[0])
	}
	next = max(next, c.marked)
	if len(open) == 0 {
		return next, ""
	}
	return next, EncodeMetadata(open[0], want, open)
}

// commitEnd commits the offsets of c, whose claim ends, in a transaction
// (Config.Commit), before the partition goes to another member.
func (o *Tracker) commitEnd(tp Partition, c *claimState) {
	o.mu.Lock()
	wait := max(time.Until(c.deadline), commitEndTimeout)
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := o.cfg.Commit(ctx); err != nil && o.cfg.Logger != nil {
		o.cfg.Logger.Error("Committing the offsets of a revoked partition failed; its last records are delivered again", err, watermill.LogFields{
			"consumer_group": o.cfg.Group, "topic": tp.Topic, "partition": tp.Partition,
		})
	}
}

// positionKey is the context key of a record's position (WithRecord).
type positionKey struct{}

// position is a record of a claim of a Tracker.
type position struct {
	marks *Tracker
	tp    Partition
	off   int64
}

// WithRecord returns ctx carrying the position of rec, a record of a claim
// of o, so that [HoldAt] can hold rec's offset while rec is handed off.
func (o *Tracker) WithRecord(ctx context.Context, rec *sarama.ConsumerMessage) context.Context {
	return context.WithValue(ctx, positionKey{}, position{marks: o, tp: Partition{rec.Topic, rec.Partition}, off: rec.Offset})
}

// HoldAt holds the offset of the record whose position ctx carries
// ([Tracker.WithRecord]), as [Tracker.Hold] does. It returns nil when ctx
// carries none, or when Hold returns nil.
func HoldAt(ctx context.Context) wire.OffsetHold {
	p, ok := ctx.Value(positionKey{}).(position)
	if !ok {
		if hold, ok := ctx.Value(holderKey{}).(func() wire.OffsetHold); ok {
			return hold()
		}
		return nil
	}
	return p.marks.Hold(p.tp, p.off)
}

type holderKey struct{}

// WithHolder returns ctx carrying hold, which holds the offset of the record
// handled in ctx for one hand-off, for a reader that tracks its offsets
// itself (a DLQ reprocess run): [HoldAt] calls it.
func WithHolder(ctx context.Context, hold func() wire.OffsetHold) context.Context {
	return context.WithValue(ctx, holderKey{}, hold)
}

// lostHold is the hold [Tracker.Hold] returns, under transactional commits,
// for a record whose claim is over (or that two claims share): lost at once,
// so that its hand-off is not written.
type lostHold struct{}

// closedLost is the Lost channel of every lostHold.
var closedLost = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func (lostHold) Release()              {}
func (lostHold) Lost() <-chan struct{} { return closedLost }
func (lostHold) Settling(bool)         {}

// Track registers rec, a record of a claim of o that its reader hands to a
// handler itself (the retry consumer), as the stack's consumer does with
// the records of watermill-kafka: the record's offset is held until h is
// released (done) or abandoned (given up, to be delivered again), and the
// offset after it is marked at once, so that the commits carry the records
// done beside it in the completed-offsets metadata. ctx is returned
// carrying rec's position ([Tracker.WithRecord]), for the message that
// hands rec to its handler. h is nil, and nothing held, when the committed
// metadata read at the claim's start says rec was settled already. Track
// waits while the metadata is at its budget; it returns an error, holding
// nothing, when rec's claim is over or revoked, or parent ends.
func (o *Tracker) Track(parent context.Context, rec *sarama.ConsumerMessage) (ctx context.Context, h *InFlight, err error) {
	tp := Partition{rec.Topic, rec.Partition}
	if o.Completed(tp, rec.Offset) {
		o.markNext(tp, rec.Offset+1)
		return parent, nil, nil
	}
	for {
		h, changed, err := o.Admit(tp, rec.Offset)
		switch {
		case err == nil:
			o.markNext(tp, rec.Offset+1)
			return o.WithRecord(parent, rec), h, nil
		case errors.Is(err, ErrOverBudget):
			select {
			case <-changed:
			case <-parent.Done():
				return parent, nil, parent.Err()
			}
		default:
			return parent, nil, err
		}
	}
}

// markNext marks next on tp's claim, as much as its holds allow.
func (o *Tracker) markNext(tp Partition, next int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.claims[tp]; c != nil {
		o.mark(tp, c, next)
	}
}
