package keyorder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/wire"
)

// What Park says became of a key, in the DLQ record's header
// wire.HeaderDLQKeyOrder.
const (
	// KeyHeld: the key waits behind the record.
	KeyHeld = "held"
	// KeyReleased: the key went on without the record, which breaks its
	// order.
	KeyReleased = "released"
)

// DefaultLimit is the default of [Config.Limit].
const DefaultLimit = 10_000

// Policy says whether a handler keeps key order, and whether a dead-lettered
// head releases its key (true) or holds it (false).
type Policy func(handlerID string) (keep, releaseDeadLettered bool)

// Config configures a [Parker].
type Config struct {
	// Topic is the state topic. Required.
	Topic string
	// Client answers the state topic's end offset. Required. The reader
	// gets a client of its own (Start).
	Client sarama.Client
	// Sender writes to it and returns once the broker acknowledged the
	// record. Required.
	Sender wire.Sender
	// Dispatcher delivers the records set aside. Required.
	Dispatcher *dispatch.Dispatcher
	// Policy says which handlers keep key order. Required.
	Policy Policy
	// Limit caps the entries (heads and records set aside) of one
	// partition. A record that would pass it waits, and with it the
	// partition's consumption, until an entry is released. Optional.
	// Default: DefaultLimit.
	Limit int
	// Logger says what the reader and the releases run into. Optional.
	Logger watermill.LoggerAdapter
	// Now is the clock. Optional. Default: time.Now.
	Now func() time.Time
}

// Parker keeps key order across hand-offs; see the package documentation.
// Create it with [New], start it with [Parker.Start].
type Parker struct {
	cfg     Config
	started atomic.Bool

	mu sync.Mutex
	// groups are the parked keys, with their live entries by offset.
	groups map[Group]*group
	// counts are the live entries of each partition.
	counts map[offsets.Partition]int
	// full are the partitions waiting for room, since when.
	full map[offsets.Partition]time.Time
	// next is the next offset of the state topic to read; moved is closed
	// and replaced whenever the state changes.
	next  int64
	moved chan struct{}
	// owned are the partitions this process consumes, while their claims
	// run (OnClaim).
	owned map[offsets.Partition]*owner
	// markers are the hand-off markers read, by the key of the head they
	// name: the head's offset in the state topic.
	markers map[entryKey]int64

	consumer sarama.Consumer
	pc       sarama.PartitionConsumer
	done     chan struct{}
}

// group is one parked key's entries.
type group struct {
	entries   map[int64]*entry
	heads     int
	releasing bool
}

// owner is one claim of a partition, for the releases it runs.
type owner struct {
	revoked <-chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Parker, or an error naming a missing field.
func New(cfg Config) (*Parker, error) {
	var errs []error
	if cfg.Topic == "" {
		errs = append(errs, errors.New("keyorder: Config.Topic is required"))
	}
	if cfg.Client == nil {
		errs = append(errs, errors.New("keyorder: Config.Client is required"))
	}
	if cfg.Sender == nil {
		errs = append(errs, errors.New("keyorder: Config.Sender is required"))
	}
	if cfg.Dispatcher == nil {
		errs = append(errs, errors.New("keyorder: Config.Dispatcher is required"))
	}
	if cfg.Policy == nil {
		errs = append(errs, errors.New("keyorder: Config.Policy is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Parker{
		cfg: cfg, groups: map[Group]*group{}, counts: map[offsets.Partition]int{},
		full: map[offsets.Partition]time.Time{}, moved: make(chan struct{}), owned: map[offsets.Partition]*owner{},
		markers: map[entryKey]int64{},
	}, nil
}

// Topic returns the state topic.
func (p *Parker) Topic() string { return p.cfg.Topic }

// Start starts reading the state topic from its start, with reader, a
// client used for nothing else: its connections carry the reader's long
// polls, which would hold up any other request on them. The topic must
// exist. It returns at once; [Parker.Sync] waits for what was written
// before. Close does not close reader.
func (p *Parker) Start(reader sarama.Client, writer wire.Sender) error {
	if writer != nil {
		p.cfg.Sender = writer
	}
	c, err := sarama.NewConsumerFromClient(reader)
	if err != nil {
		return fmt.Errorf("keyorder: consumer of %s: %w", p.cfg.Topic, err)
	}
	pc, err := c.ConsumePartition(p.cfg.Topic, 0, sarama.OffsetOldest)
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("keyorder: reading %s: %w", p.cfg.Topic, err)
	}
	p.consumer, p.pc, p.done = c, pc, make(chan struct{})
	go p.read()
	p.started.Store(true)
	return nil
}

// Started reports whether Start was called.
func (p *Parker) Started() bool { return p != nil && p.started.Load() }

// Close stops reading the state topic.
func (p *Parker) Close() error {
	if !p.Started() {
		return nil
	}
	p.pc.AsyncClose()
	<-p.done
	return p.consumer.Close()
}

// read applies the records of the state topic in order.
func (p *Parker) read() {
	defer close(p.done)
	for m := range p.pc.Messages() {
		p.apply(m)
	}
}

// apply applies m, a record of the state topic.
func (p *Parker) apply(m *sarama.ConsumerMessage) {
	k, e, err := decode(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = m.Offset + 1
	p.signal()
	if err != nil {
		p.cfg.Logger.Error("Ignoring a record of the key-order state topic", err, watermill.LogFields{"topic": p.cfg.Topic, "offset": m.Offset})
		return
	}
	if k.HandedOff {
		k.HandedOff = false
		if e == nil {
			delete(p.markers, k)
		} else {
			p.markers[k] = e.handedOff
		}
		return
	}
	p.put(k, e, m.Offset)
}

// put applies the state record at logOffset, the entry e of k (nil for a
// tombstone), unless the entry of k in memory comes from a later record:
// this process applies its own writes as soon as the broker acknowledged
// them (write), before the reader reads them. p.mu is held.
func (p *Parker) put(k entryKey, e *entry, logOffset int64) {
	tp := offsets.Partition{Topic: k.Topic, Partition: k.Partition}
	g := p.groups[k.Group]
	old := (*entry)(nil)
	if g != nil {
		old = g.entries[k.Offset]
	}
	if old != nil && old.logOffset >= logOffset {
		return // applied already, or older than what is applied
	}
	p.signal()
	if _, marked := p.markers[k]; marked && (e == nil || !e.pending) && p.owned[tp] != nil {
		// The head the marker named is gone: the owner drops the marker.
		go p.forgetSync(handedOffMarker(p.cfg.Topic, k, -1, p.cfg.Now()))
	}
	if old != nil {
		if old.holdsKey() {
			g.heads--
		}
		delete(g.entries, k.Offset)
		p.counts[tp]--
	}
	if e != nil {
		if g == nil {
			g = &group{entries: map[int64]*entry{}}
			p.groups[k.Group] = g
		}
		if old != nil {
			e.gen = old.gen
		}
		g.entries[k.Offset] = e
		if e.holdsKey() {
			g.heads++
		}
		p.counts[tp]++
	}
	if p.counts[tp] <= 0 {
		delete(p.counts, tp)
	}
	if g != nil && len(g.entries) == 0 && !g.releasing {
		delete(p.groups, k.Group)
		return
	}
	if g != nil {
		p.kick(k.Group, g)
	}
}

// signal wakes the waiters of a change; p.mu is held.
func (p *Parker) signal() {
	close(p.moved)
	p.moved = make(chan struct{})
}

// waitRead waits until the reader has applied the state record at off.
func (p *Parker) waitRead(ctx context.Context, off int64) error {
	for {
		p.mu.Lock()
		next, moved := p.next, p.moved
		p.mu.Unlock()
		if next > off {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errors.New("keyorder: the state topic's reader stopped")
		}
	}
}

// Sync waits until the reader has applied every record written to the
// state topic before the call.
func (p *Parker) Sync(ctx context.Context) error {
	end, err := p.cfg.Client.GetOffset(p.cfg.Topic, 0, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("keyorder: end of %s: %w", p.cfg.Topic, err)
	}
	if end <= 0 {
		return nil
	}
	return p.waitRead(ctx, end-1)
}

// write writes rec, the state record of k, to the state topic, and applies
// e, its entry (nil for a tombstone), once the broker acknowledged it, if
// the reader has not read it yet (what it read since is newer). A tombstone
// is applied here only when the reader has read the entry it removes:
// applied before, it would let the entry come back when the reader reads it.
func (p *Parker) write(ctx context.Context, k entryKey, e *entry, rec *sarama.ProducerMessage) error {
	if err := p.cfg.Sender.SendRecord(ctx, rec); err != nil {
		return fmt.Errorf("keyorder: writing to %s: %w", p.cfg.Topic, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e == nil {
		if g := p.groups[k.Group]; g != nil {
			if old := g.entries[k.Offset]; old != nil && old.logOffset < p.next && old.logOffset < rec.Offset {
				p.put(k, nil, rec.Offset)
			}
		}
		return nil
	}
	e.logOffset = rec.Offset
	if p.next <= rec.Offset {
		// Not read yet: what the reader applies later is newer.
		p.put(k, e, rec.Offset)
	}
	return nil
}

// Wants reports whether msg's handler keeps key order: only then does
// [Parker.Handle] need to see it.
func (p *Parker) Wants(msg *message.Message) bool {
	return p != nil && p.started.Load() && p.wants(msg)
}

// wants is the part of Wants past the start check, out of the frames of
// its callers: the entry middleware's is live while the handler runs.
//
//go:noinline
func (p *Parker) wants(msg *message.Message) bool {
	keep, _ := p.cfg.Policy(wire.HandlerIDOf(msg))
	return keep
}

// Handle runs next, the rest of the handler chain, for msg, a message of a
// handler that keeps key order:
//   - a record of its topic whose key is parked on its partition is set
//     aside (written to the state topic) and not handled; one set aside
//     before is acknowledged again without being written;
//   - a head that is handled, on a retry, a reprocessing or a delivery from
//     its topic again, releases its key when no hand-off parked it again
//     meanwhile;
//   - a record without a key or a position goes on as it is.
//
// A write to the state topic that fails returns an error that wraps
// wire.ErrHandoff: the message is delivered again.
func (p *Parker) Handle(msg *message.Message, next message.HandlerFunc) ([]*message.Message, error) {
	d := wire.DeliveryOf(msg)
	if !d.HasOffset || len(d.Key) == 0 {
		return next(msg)
	}
	k := entryKey{Group: Group{HandlerID: d.HandlerID, Topic: d.Topic, Partition: d.Partition, Key: string(d.Key)}, Offset: d.Offset}
	p.mu.Lock()
	g := p.groups[k.Group]
	var e *entry
	if g != nil {
		e = g.entries[k.Offset]
	}
	switch {
	case d.Source == wire.SourceMain && e != nil && e.kind == KindAside:
		p.mu.Unlock()
		return nil, nil // set aside before a restart
	case d.Source == wire.SourceMain && e == nil && g != nil && len(g.entries) > 0:
		p.mu.Unlock()
		if err := p.setAside(msg, k); err != nil {
			return nil, fmt.Errorf("%w: setting the record aside behind its parked key: %w", wire.ErrHandoff, err)
		}
		return nil, nil
	case d.Source == wire.SourceParked || (e != nil && e.kind != KindHead) || (e == nil && d.Source == wire.SourceMain):
		p.mu.Unlock()
		return next(msg)
	case e == nil:
		// A retry or a reprocessing whose head this process has not read
		// yet (another instance parked it): read the state up to its end
		// first, so that a success releases the key.
		p.mu.Unlock()
		if err := p.Sync(msg.Context()); err != nil {
			return nil, fmt.Errorf("%w: reading the key-order state: %w", wire.ErrHandoff, err)
		}
		p.mu.Lock()
		if g := p.groups[k.Group]; g != nil {
			e = g.entries[k.Offset]
		}
		if e == nil || e.kind != KindHead {
			p.mu.Unlock()
			return next(msg)
		}
	}
	gen := e.gen
	p.mu.Unlock()
	out, err := next(msg)
	if err != nil {
		return out, err
	}
	p.mu.Lock()
	still := false
	if g := p.groups[k.Group]; g != nil {
		e := g.entries[k.Offset]
		still = e != nil && e.kind == KindHead && e.gen == gen
	}
	p.mu.Unlock()
	if still {
		if err := p.release(msg.Context(), k); err != nil {
			return nil, fmt.Errorf("%w: releasing the parked key: %w", wire.ErrHandoff, err)
		}
	}
	return out, nil
}

// setAside writes msg, whose key k is parked, to the state topic, once its
// partition has room.
func (p *Parker) setAside(msg *message.Message, k entryKey) error {
	ctx := msg.Context()
	if err := p.waitRoom(ctx, k.Group); err != nil {
		return err
	}
	now := p.cfg.Now()
	e := &entry{kind: KindAside, since: now, uuid: msg.UUID, payload: msg.Payload, headers: maps.Clone(msg.Metadata)}
	return p.write(ctx, k, e, record(p.cfg.Topic, k, KindAside, "", now, msg.UUID, msg.Payload, msg.Metadata))
}

// release tombstones the entry k.
func (p *Parker) release(ctx context.Context, k entryKey) error {
	return p.write(ctx, k, nil, record(p.cfg.Topic, k, KindReleased, "", p.cfg.Now(), "", nil, nil))
}

// waitRoom waits until g's partition has room for one more entry.
func (p *Parker) waitRoom(ctx context.Context, g Group) error {
	tp := offsets.Partition{Topic: g.Topic, Partition: g.Partition}
	for {
		p.mu.Lock()
		n, moved := p.counts[tp], p.moved
		if n < p.cfg.Limit {
			delete(p.full, tp)
			p.mu.Unlock()
			return nil
		}
		if _, ok := p.full[tp]; !ok {
			p.full[tp] = p.cfg.Now()
			p.cfg.Logger.Info("Key-order limit reached: the partition waits until a parked key is released", watermill.LogFields{
				"topic": tp.Topic, "partition": tp.Partition, "limit": p.cfg.Limit,
			})
		}
		p.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Park parks the key of msg, delivered as d, behind it before it is handed
// to a retry lane (dead false) or to the DLQ (dead true), and says what
// became of the key: KeyHeld, KeyReleased (a dead-lettered head, when the
// handler's policy releases it) or "" when the handler keeps no key order
// or the record has no key or no position. It implements the hook of the
// retry and DLQ middlewares.
func (p *Parker) Park(ctx context.Context, msg *message.Message, d *wire.Delivery, dead bool) (string, error) {
	if !p.Started() || !d.HasOffset || len(d.Key) == 0 {
		return "", nil
	}
	keep, releaseDead := p.cfg.Policy(d.HandlerID)
	if !keep {
		return "", nil
	}
	k := entryKey{Group: Group{HandlerID: d.HandlerID, Topic: d.Topic, Partition: d.Partition, Key: string(d.Key)}, Offset: d.Offset}
	p.mu.Lock()
	var e *entry
	g := p.groups[k.Group]
	if g != nil {
		e = g.entries[k.Offset]
	}
	// A record delivered from the state topic has no other copy until its
	// hand-off is acknowledged: its head carries it (releaseAll).
	carried := d.Source == wire.SourceParked && e.carries()
	if dead && releaseDead {
		p.mu.Unlock()
		if e != nil && e.kind == KindHead && !carried {
			if err := p.release(ctx, k); err != nil {
				return "", err
			}
		}
		return KeyReleased, nil
	}
	reason := ReasonRetry
	if dead {
		reason = ReasonDeadLettered
	}
	if e != nil && e.kind == KindHead && (e.reason == reason || !dead) {
		e.gen++
		p.mu.Unlock()
		return KeyHeld, nil
	}
	p.mu.Unlock()
	if e == nil {
		if err := p.waitRoom(ctx, k.Group); err != nil {
			return "", err
		}
	}
	now := p.cfg.Now()
	head := &entry{kind: KindHead, reason: reason, since: now}
	rec := record(p.cfg.Topic, k, KindHead, reason, now, "", nil, nil)
	if carried {
		head.pending, head.uuid, head.payload, head.headers = true, e.uuid, e.payload, e.headers
		rec = pendingHead(p.cfg.Topic, k, reason, now, e)
	}
	if err := p.write(ctx, k, head, rec); err != nil {
		return "", err
	}
	p.mu.Lock()
	if g := p.groups[k.Group]; g != nil {
		if e := g.entries[k.Offset]; e != nil {
			e.gen++
		}
	}
	p.mu.Unlock()
	return KeyHeld, nil
}

// Release releases a parked key as an operator asks: its heads are
// tombstoned, and the records set aside behind them are delivered. It
// returns how many heads it released; 0 when the key is not parked.
func (p *Parker) Release(ctx context.Context, g Group) (int, error) {
	if !p.Started() {
		return 0, nil
	}
	if err := p.Sync(ctx); err != nil {
		return 0, err
	}
	p.mu.Lock()
	var heads []int64
	if gr := p.groups[g]; gr != nil {
		for off, e := range gr.entries {
			if e.kind == KindHead {
				heads = append(heads, off)
			}
		}
	}
	p.mu.Unlock()
	for _, off := range heads {
		if err := p.release(ctx, entryKey{Group: g, Offset: off}); err != nil {
			return 0, err
		}
	}
	return len(heads), nil
}
