package offsets

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/wire"
)

// Config tunes a [Tracker].
type Config struct {
	// MaxHolds caps the holds [Tracker.Hold] keeps open at once over every
	// partition; beyond it Hold returns nil. Holds taken with
	// [Tracker.Admit] do not count: their caller bounds them. Optional.
	// Default: 1024.
	MaxHolds int
	// ReleaseWait bounds how long the end of a claim waits for its holds to
	// be released. Optional. Zero means no wait. Default: none (zero); the
	// stack sets the smaller of the shutdown timeout and half the rebalance
	// timeout.
	ReleaseWait time.Duration
	// MetadataBudget caps the length of the commit metadata that lists the
	// unsettled offsets above the committed one; [Tracker.Admit] refuses a
	// hold that would pass it. Optional. Default: 3000 bytes
	// ([DefaultMetadataBudget]).
	MetadataBudget int
	// FlushInterval is how often a claim whose completed offsets changed
	// pushes its new metadata to the session (which commits it on its own
	// interval); marks in between reuse the last one, which stays true.
	// Optional. Default: 100ms.
	FlushInterval time.Duration
	// Committed, when set, reads a partition's committed offset and
	// metadata when its claim starts, so that the records that metadata
	// says were settled are skipped ([Tracker.Completed]). An error, or
	// metadata that does not decode, means nothing is skipped. Optional.
	Committed func(tp Partition) (offset int64, metadata string, err error)
	// Logger reports the commit metadata ignored when a claim starts, and
	// the errors of a claim's partition consumer that the watch of the
	// claim reads (see [Tracker.WrapConsumerGroupHandler]). Optional.
	// Default: nothing is logged.
	Logger watermill.LoggerAdapter
	// Group names the consumer group in those log lines. Optional.
	Group string
	// OnClaim, when set, is called when a claim of tp starts, before its
	// first record is handed out, with a channel closed once the claim is
	// revoked; the claim waits for it to return. The function it returns,
	// when not nil, is called once the claim is revoked, with the claim's
	// deadline, and the claim's end waits for it too. Optional.
	OnClaim func(tp Partition, revoked <-chan struct{}) func(deadline time.Time)
	// Commit, when set, makes the commits transactional: the session
	// commits nothing of its own (its Commit does nothing, and the sarama
	// config must disable auto-commit), a transaction commits what
	// [Tracker.Commits] reports, and the end of a claim calls Commit, once
	// its holds are released or its deadline passed, so that its offsets
	// are committed before the partition goes to another member. Optional.
	Commit func(ctx context.Context) error
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
	if c.MetadataBudget <= 0 {
		c.MetadataBudget = DefaultMetadataBudget
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
}

// Errors of [Tracker.Admit].
var (
	// ErrNoClaim: the partition has no claim of this process, or two at once
	// (a rebalance between two members of one process), or the offset was
	// committed already. The caller handles the record without a hold.
	ErrNoClaim = errors.New("offsets: no single claim for the record")
	// ErrOverBudget: one more unsettled offset would make the commit
	// metadata pass its budget. The caller waits for a change
	// ([Tracker.Changes]) and tries again.
	ErrOverBudget = errors.New("offsets: completed-offset map over its budget")
	// ErrRevoked: the record's claim is revoked (a rebalance or a stop).
	// The caller gives the record up unhandled ([Tracker.Refused], then
	// acknowledges it): its offset stays uncommitted for the next owner.
	ErrRevoked = errors.New("offsets: the claim of the record is revoked")
)

// Tracker is a kafka.SaramaTracer (see watermill-kafka) that wraps the
// consumer group handler of watermill-kafka to see which offsets it marks and
// which partitions it is consuming, and holds marks back as the package
// documentation says. Create it with [NewTracker]; it is safe for concurrent
// use.
type Tracker struct {
	mu      sync.Mutex
	claims  map[Partition]*claimState // the latest claim of each partition
	active  map[Partition]int         // ConsumeClaim calls in progress
	holds   int                       // open holds taken with Hold, all partitions
	changed chan struct{}             // closed and replaced on a change, if watched
	watched bool                      // changes was called since the last change
	// stopBy is, by topic, when a stop stops waiting for the records in
	// flight (StopBy): the end of a claim of the topic waits no later.
	stopBy map[string]time.Time

	cfg      Config
	skipped  atomic.Int64
	revoking atomic.Int32 // claims revoked and not ended
}

// claimState is one ConsumeClaim of a partition: its session and its holds.
type claimState struct {
	sess sarama.ConsumerGroupSession
	// held are the held offsets in ascending order, one entry per open hold
	// (abandoned ones included); active counts those not abandoned, counted
	// those taken with Hold. want is the highest next offset watermill-kafka
	// asked to mark; marked is the highest next offset marked in this
	// claim's session (it starts at the committed offset; -1 when unknown).
	held            []int64
	active, counted int
	want, marked    int64
	// handedOut is the offset handed out last, msg its message; refused
	// the highest offset refused unhandled, refusedFrom the lowest (marks
	// at or past it are not made); -1 for none.
	handedOut, refused, refusedFrom int64
	msg                             *message.Message
	// skip is the window of settled offsets read from the committed
	// metadata when the claim started; nil when none.
	skip    *Window
	skipped int64
	// meta is the metadata last given to the session.
	meta string
	// settling are the held offsets whose hand-off is in a transaction
	// being committed, in ascending order; start is the offset the claim
	// started at (-1 when unknown). See Commits.
	settling []int64
	start    int64
	// lazy claims (a record was admitted) give the session their marks on
	// the flush interval rather than at each mark; pushed is the offset
	// last given to it.
	lazy   bool
	pushed int64
	// revoked is closed when the claim is revoked (its partition consumer
	// closes: a rebalance, cooperative or not, the session's end, a stop)
	// or starts to end; deadline is then when the claim stops waiting for
	// its records in flight.
	revoked     chan struct{}
	revokedOnce bool
	deadline    time.Time
	// ctx is the context of the session given to watermill-kafka: it is
	// cancelled once the claim is revoked and watermill-kafka's record is
	// settled, so that watermill-kafka lets the claim go.
	ctx    context.Context
	cancel context.CancelFunc
	// end is cancelled when the claim has ended (Lost, Ended): the contexts
	// of the records still in their handlers derive from it.
	end       context.Context
	cancelEnd context.CancelFunc
	ended     bool
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
		changed: make(chan struct{}),
		cfg:     cfg,
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
// a mark, a hold released or abandoned, a claim started or ended.
func (o *Tracker) Changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.watched = true
	return o.changed
}

// HandOut records that offset off of tp is being handed out to a handler,
// as msg (nil when it is not known).
func (o *Tracker) HandOut(tp Partition, off int64, msg *message.Message) {
	o.mu.Lock()
	if c := o.claims[tp]; c != nil {
		c.handedOut, c.msg = off, msg
		if c.marked < 0 {
			// No committed offset: the first record handed out is where
			// the partition starts.
			c.marked = off
		}
	}
	o.mu.Unlock()
}

// Refused records that offset off of tp was refused unhandled (nacked
// while draining, or acknowledged unhandled once its claim is revoked): it
// is not waited for, and no mark of its claim reaches it any more, so that
// it stays uncommitted for the next owner.
func (o *Tracker) Refused(tp Partition, off int64) {
	o.update(func() {
		if c := o.claims[tp]; c != nil {
			c.refused = max(c.refused, off)
			if c.refusedFrom < 0 || off < c.refusedFrom {
				c.refusedFrom = off
			}
			o.letGo(c)
		}
	})
}

// Revoking reports whether some claim is revoked and has not ended yet:
// only then can [Tracker.RefuseRevoked] refuse a record. It costs one atomic
// load.
func (o *Tracker) Revoking() bool { return o != nil && o.revoking.Load() > 0 }

// RefuseRevoked refuses msg, the record at off of tp that watermill-kafka
// handed out (HandOut), when its claim is revoked and the record is not
// settled: it is to be acknowledged unhandled, and stays uncommitted for the
// next owner. It reports whether it refused msg; a message it was not
// handed out as (a copy, a scheduler's message) is never refused.
func (o *Tracker) RefuseRevoked(tp Partition, off int64, msg *message.Message) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.claims[tp]
	if c == nil || !c.revokedOnce || c.ended || c.msg != msg || c.handedOut != off || c.outSettled() {
		return false
	}
	c.refused = max(c.refused, off)
	if c.refusedFrom < 0 || off < c.refusedFrom {
		c.refusedFrom = off
	}
	o.letGo(c)
	o.signal()
	return true
}

// Completed reports whether the committed metadata read when tp's claim
// started says that off was settled, so that the record is not handled
// again; each such record is counted in [Tracker.Skipped].
func (o *Tracker) Completed(tp Partition, off int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.claims[tp]
	if c == nil || c.skip == nil {
		return false
	}
	if off >= c.skip.End {
		c.skip = nil
		return false
	}
	if !c.skip.Settled(off) {
		return false
	}
	c.skipped++
	o.skipped.Add(1)
	return true
}

// Skipped returns how many records [Tracker.Completed] reported as settled
// already, since the Tracker was made.
func (o *Tracker) Skipped() int64 { return o.skipped.Load() }

// Settled reports whether no partition of topics has a message in flight:
// the last one handed out was marked (or refused), and no hold that is not
// abandoned is open. A claim that is over is not in o.claims any more: its
// session can mark nothing.
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
	return c.active == 0 && c.outSettled()
}

// outSettled reports whether the record watermill-kafka handed out last
// is settled: marked or refused; o.mu is held.
func (c *claimState) outSettled() bool {
	return c.handedOut < 0 || c.want > c.handedOut || c.refused >= c.handedOut
}

// letGo cancels the context of c's session, as watermill-kafka sees it,
// once c is revoked and watermill-kafka's record is settled: it then lets
// the claim go without handing out another record; o.mu is held.
func (o *Tracker) letGo(c *claimState) {
	if c.revokedOnce && c.outSettled() {
		c.cancel()
	}
}

// Hold holds back offset off of tp, and with it every later offset of tp,
// from the marks until the hold is released. It returns nil, and holds
// nothing, when tp has no claim, two claims at once, MaxHolds holds are
// open, off was marked already, or one more unsettled offset would make the
// commit metadata pass its budget: the caller must then settle the record
// before it acknowledges it.
func (o *Tracker) Hold(tp Partition, off int64) wire.OffsetHold {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.holds >= o.cfg.MaxHolds {
		return nil
	}
	h, err := o.hold(tp, off, false)
	if errors.Is(err, ErrNoClaim) && o.cfg.Commit != nil {
		// Under transactions a record whose claim is over is not handed
		// off: it will be delivered again, by this claim's successor.
		return lostHold{}
	}
	if err != nil {
		return nil
	}
	h.counted = true
	h.claim.counted++
	o.holds++
	return h
}

// Admit holds offset off of tp, like Hold, for a record that is handled
// beside others of its partition. It is not capped by MaxHolds (the caller
// bounds its records in flight). It returns [ErrOverBudget] when one more
// unsettled offset would pass the metadata budget, with a channel closed at
// the next change of a claim (as [Tracker.Changes], taken under the same
// lock, so that no change between the refusal and the wait is missed);
// [ErrRevoked] when the claim is revoked; and [ErrNoClaim] when Hold would
// return nil for other reasons.
func (o *Tracker) Admit(tp Partition, off int64) (*InFlight, <-chan struct{}, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, err := o.hold(tp, off, true)
	switch {
	case err == nil:
		h.claim.lazy = true
	case errors.Is(err, ErrOverBudget):
		o.watched = true
		return nil, o.changed, err
	}
	return h, nil, err
}

// hold adds a hold of off to tp's claim; o.mu is held. admit is true for
// Admit, which refuses a revoked claim.
func (o *Tracker) hold(tp Partition, off int64, admit bool) (*InFlight, error) {
	c := o.claims[tp]
	// Two claims of one partition at once (a rebalance of two members of
	// this process) leave it unclear whose session marks the message: no
	// hold then.
	if c == nil || c.ended || o.active[tp] != 1 || c.marked > off {
		return nil, ErrNoClaim
	}
	if admit && c.revokedOnce {
		return nil, ErrRevoked
	}
	i := heldIndex(c.held, off)
	c.held = slices.Insert(c.held, i, off)
	if o.overBudget(c, off) {
		c.held = slices.Delete(c.held, i, i+1)
		return nil, ErrOverBudget
	}
	c.active++
	return &InFlight{marks: o, tp: tp, claim: c, offset: off}, nil
}

// overBudget reports whether c's metadata, with its window reaching past
// off, would pass the budget. Each unsettled offset costs at most 14 bytes
// (a 10-byte varint in base64), so the encoding is only done when that bound
// passes the budget; o.mu is held.
func (o *Tracker) overBudget(c *claimState, off int64) bool {
	if (len(c.held)+3)*14 <= o.cfg.MetadataBudget {
		return false
	}
	base := c.held[0]
	return len(EncodeMetadata(base, max(c.want, off+1), c.held)) > o.cfg.MetadataBudget
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

// metadata returns the commit metadata of c: the window from its lowest
// unsettled offset to the highest one acknowledged; o.mu is held.
func (c *claimState) metadata() string {
	if len(c.held) == 0 {
		return ""
	}
	return EncodeMetadata(c.held[0], c.want, c.held)
}

// mark marks next (the offset after the last message done) in c's session,
// or as much of it as the holds allow; o.mu is held.
func (o *Tracker) mark(tp Partition, c *claimState, next int64) {
	if c == nil || c.ended {
		return
	}
	if c.refusedFrom >= 0 && next > c.refusedFrom {
		// A record at refusedFrom was given up unhandled: nothing of the
		// claim is marked past it.
		next = c.refusedFrom
	}
	c.want = max(c.want, next)
	next = c.want
	if len(c.held) > 0 {
		next = min(next, c.held[0])
	}
	if next <= c.marked {
		return
	}
	if len(c.held) == 0 {
		c.meta = ""
	}
	c.marked = next
	o.signal()
	if c.lazy {
		// Records admitted beside each other settle many times per
		// commit: the flush gives the session the latest mark.
		return
	}
	// The metadata computed at the last flush stays true (it names the
	// offsets settled then); the flush interval refreshes it, so that a
	// mark costs no encoding.
	c.sess.MarkOffset(tp.Topic, tp.Partition, next, c.meta)
	c.pushed = next
}

// flush gives c's session its current metadata when it changed while the
// marked offset did not move, so that the next commit carries the offsets
// completed since.
func (o *Tracker) flush(tp Partition, c *claimState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c.ended || c.marked < 0 {
		return
	}
	meta := c.metadata()
	if meta == c.meta && c.pushed == c.marked {
		return
	}
	c.meta, c.pushed = meta, c.marked
	// MarkOffset takes it when the session has no offset of this partition
	// yet (nothing committed, nothing marked), ResetOffset when it has this
	// one; each does nothing in the other case.
	c.sess.MarkOffset(tp.Topic, tp.Partition, c.marked, meta)
	c.sess.ResetOffset(tp.Topic, tp.Partition, c.marked, meta)
}

// InFlight is a hold taken with [Tracker.Hold] or [Tracker.Admit]. It
// implements [wire.OffsetHold].
type InFlight struct {
	marks     *Tracker
	tp        Partition
	claim     *claimState
	offset    int64
	released  bool
	abandoned bool
	counted   bool
	settling  bool
}

// Release settles the held offset: the marks of its partition may pass it.
// It does nothing after the first call, after Abandon, or once the claim
// ended.
func (h *InFlight) Release() {
	o := h.marks
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.released || h.abandoned {
		return
	}
	h.released = true
	c := h.claim
	if c.ended {
		return // counted out when the claim ended
	}
	if h.counted {
		o.holds--
		c.counted--
	}
	c.active--
	if i, ok := slices.BinarySearch(c.held, h.offset); ok {
		c.held = slices.Delete(c.held, i, i+1)
	}
	if h.settling {
		h.settling = false
		c.unsettle(h.offset)
	}
	o.mark(h.tp, c, c.want)
	o.signal()
}

// Abandon gives the record up unsettled: its offset stays held (not
// committed, so the next owner of the partition receives it again), but
// neither a drain nor the end of the claim waits for it any more.
func (h *InFlight) Abandon() {
	o := h.marks
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.released || h.abandoned {
		return
	}
	h.abandoned = true
	if !h.claim.ended {
		h.claim.active--
	}
	o.signal()
}

// Lost implements wire.OffsetHold: it is closed when the claim ended.
func (h *InFlight) Lost() <-chan struct{} { return h.claim.end.Done() }

// Ended returns a context cancelled when the claim ended: the context of a
// record still in its handler then, which the claim stopped waiting for.
func (h *InFlight) Ended() context.Context { return h.claim.end }

// Revoked is closed as soon as the claim is revoked or starts to end (a
// rebalance, cooperative or not, the session's end, a shutdown): records
// not yet handed to a handler should then be abandoned.
func (h *InFlight) Revoked() <-chan struct{} { return h.claim.revoked }

// Offset returns the held offset.
func (h *InFlight) Offset() int64 { return h.offset }

// PartitionStats describes one claim, as [Tracker.Stats] returns it.
type PartitionStats struct {
	Partition
	// Committable is the offset the next commit carries.
	Committable int64
	// InFlight counts the open holds that are not abandoned.
	InFlight int
	// SettledAbove counts the offsets above Committable that are settled
	// but not committable yet (holes in the offsets included).
	SettledAbove int64
	// MetadataBytes is the length of the completed-offsets map last given
	// to the session, or, when the commits are transactional, the one the
	// next transaction commits.
	MetadataBytes int
	// Skipped counts the records of this claim skipped as completed.
	Skipped int64
}

// Stats describes the claims in progress that admitted records
// ([Tracker.Admit]), sorted by topic and partition; the claims of sequential
// handlers are left out.
func (o *Tracker) Stats() []PartitionStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]PartitionStats, 0, len(o.claims))
	for tp, c := range o.claims {
		if !c.lazy {
			continue
		}
		above := int64(0)
		if c.marked >= 0 {
			above = max(0, c.want-c.marked-int64(len(c.held)))
		}
		metaBytes := len(c.meta)
		if o.cfg.Commit != nil {
			// Under transactions the session is given no metadata: the
			// next transaction commits the map as it is now.
			_, meta := c.committable()
			metaBytes = len(meta)
		}
		out = append(out, PartitionStats{
			Partition: tp, Committable: c.marked, InFlight: c.active,
			SettledAbove: above, MetadataBytes: metaBytes, Skipped: c.skipped,
		})
	}
	slices.SortFunc(out, func(a, b PartitionStats) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition.Partition - b.Partition.Partition)
	})
	return out
}

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
// honours the holds, while a watch of the claim flushes its changed
// metadata on the flush interval and sees it revoked.
//
// A claim is revoked when its partition consumer closes, which sarama does
// when the session ends (an eager rebalance, a stop) and, with the
// cooperative-sticky assignor, for the revoked partitions alone while the
// session goes on. Then the claim gives up what waits, lets watermill-kafka
// go once its record is settled (the session's context it sees is
// cancelled), and waits for its holds until its deadline: ReleaseWait after
// the revocation, or the stop's deadline ([Tracker.StopBy]) when that is
// earlier. At the deadline, a record still in a sequential handler is
// acknowledged unhandled, unmarked, so that watermill-kafka returns and the
// handler's context is cancelled; the holds still open are lost, their
// offsets stay uncommitted and their records are delivered again.
func (h markingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	o := h.marks
	tp := Partition{claim.Topic(), claim.Partition()}
	c := o.startClaim(tp, sess, claim)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.watchClaim(tp, c, claim, stop)
	}()
	var claimEnded func(time.Time)
	if o.cfg.OnClaim != nil {
		claimEnded = o.cfg.OnClaim(tp, c.revoked)
	}
	err := h.ConsumerGroupHandler.ConsumeClaim(markingSession{ConsumerGroupSession: sess, marks: o, tp: tp, claim: c}, claim)
	o.revoke(tp, c)
	if claimEnded != nil {
		o.mu.Lock()
		deadline := c.deadline
		o.mu.Unlock()
		claimEnded(deadline)
	}
	o.endClaim(tp, c)
	close(stop)
	wg.Wait()
	o.finishClaim(tp, c)
	return err
}

// consumerErrors is the part of sarama's claim that says when its
// partition consumer closed: its Errors channel closes then.
type consumerErrors interface {
	Errors() <-chan *sarama.ConsumerError
}

// watchClaim flushes c's metadata on the flush interval, revokes c when its
// partition consumer closes or its session ends, and at c's deadline gives
// up watermill-kafka's record, until stop is closed.
func (o *Tracker) watchClaim(tp Partition, c *claimState, claim sarama.ConsumerGroupClaim, stop <-chan struct{}) {
	t := time.NewTicker(o.cfg.FlushInterval)
	defer t.Stop()
	var done <-chan struct{}
	if ctx := c.sess.Context(); ctx != nil {
		done = ctx.Done()
	}
	var errs <-chan *sarama.ConsumerError
	if ce, ok := claim.(consumerErrors); ok {
		errs = ce.Errors()
	}
	var deadline <-chan time.Time
	for {
		select {
		case <-stop:
			return
		case err, ok := <-errs:
			if ok {
				// Read here, this error is not read by sarama's own
				// reader, which reports it on the group's errors.
				o.logError(tp, err)
				continue
			}
			errs = nil
			if d := o.revoke(tp, c); d != nil {
				deadline = d
			}
		case <-done:
			done = nil
			if d := o.revoke(tp, c); d != nil {
				deadline = d
			}
		case <-deadline:
			deadline = nil
			o.giveUpOut(tp, c)
		case <-t.C:
			o.flush(tp, c)
		}
	}
}

// logError logs an error of tp's partition consumer.
func (o *Tracker) logError(tp Partition, err *sarama.ConsumerError) {
	if o.cfg.Logger == nil || err == nil {
		return
	}
	o.cfg.Logger.Error("Partition consumer error", err.Err, watermill.LogFields{
		"consumer_group": o.cfg.Group, "topic": tp.Topic, "partition": tp.Partition,
	})
}

// revoke revokes c, once, and returns a channel that fires at its
// deadline (nil when it was revoked already).
func (o *Tracker) revoke(tp Partition, c *claimState) <-chan time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c.revokedOnce {
		return nil
	}
	c.revokedOnce = true
	o.revoking.Add(1)
	c.deadline = time.Now().Add(o.cfg.ReleaseWait)
	if by, ok := o.stopBy[tp.Topic]; ok && by.Before(c.deadline) {
		c.deadline = by
	}
	close(c.revoked)
	o.letGo(c)
	o.signal()
	return time.After(time.Until(c.deadline))
}

// StopBy says that a stop waits for the records in flight of topics until
// by, and no longer: a claim of one of them that ends from now on stops
// waiting for its holds then, rather than ReleaseWait after it is revoked.
// A later call with an earlier time moves it earlier.
func (o *Tracker) StopBy(by time.Time, topics ...string) {
	o.update(func() {
		if o.stopBy == nil {
			o.stopBy = map[string]time.Time{}
		}
		for _, t := range topics {
			if old, ok := o.stopBy[t]; !ok || by.Before(old) {
				o.stopBy[t] = by
			}
		}
		for tp, c := range o.claims {
			if by.Before(c.deadline) && slices.Contains(topics, tp.Topic) {
				c.deadline = by
			}
		}
	})
}

// giveUpOut gives up the record watermill-kafka handed out last, if it is
// not settled at c's deadline: it is refused and acknowledged, unmarked, so
// that watermill-kafka's ConsumeClaim returns (and cancels the record's
// context). Its handler may still be running; its offset stays uncommitted.
func (o *Tracker) giveUpOut(tp Partition, c *claimState) {
	o.mu.Lock()
	msg := c.msg
	if c.ended || c.outSettled() || msg == nil {
		o.mu.Unlock()
		return
	}
	off := c.handedOut
	o.mu.Unlock()
	o.Refused(tp, off)
	msg.Ack()
}

// startClaim registers claim, a claim of tp in sess. Its consumption starts
// at claim's initial offset (the committed one, or a negative sarama.Offset*
// when none); the metadata committed with it is read (Config.Committed) and
// trusted when it names only offsets below the partition's high-water mark.
func (o *Tracker) startClaim(tp Partition, sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) *claimState {
	c := &claimState{
		sess: sess, revoked: make(chan struct{}),
		handedOut: -1, refused: -1, refusedFrom: -1, marked: -1, want: -1, pushed: -1, start: -1,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.end, c.cancelEnd = context.WithCancel(context.Background())
	if initial := claim.InitialOffset(); initial >= 0 {
		c.marked, c.want, c.pushed, c.start = initial, initial, initial, initial
		if o.cfg.Committed != nil {
			if off, meta, err := o.cfg.Committed(tp); err == nil && off == initial {
				c.skip = o.trusted(tp, meta, off, claim.HighWaterMarkOffset())
			}
		}
	}
	o.update(func() {
		o.claims[tp] = c
		o.active[tp]++
	})
	return c
}

// trusted decodes meta, committed with offset committed on tp, and returns
// its window when it can be trusted: it decodes, it is no longer than the
// budget, and it names no offset at or past hwm, the partition's high-water
// mark when the claim started (metadata this package wrote names only
// offsets that were written). Metadata that is not empty and fails is
// logged once and ignored: the partition is consumed from the committed
// offset.
func (o *Tracker) trusted(tp Partition, meta string, committed, hwm int64) *Window {
	if meta == "" {
		return nil
	}
	w, ok := DecodeMetadata(meta, committed)
	why := ""
	switch {
	case !ok:
		why = "it does not decode as this library's (another client's, or corrupt)"
	case len(meta) > o.cfg.MetadataBudget:
		why = "it is longer than the metadata budget"
	case w.End > hwm:
		why = "it names offsets at or past the partition's high-water mark"
	default:
		return w
	}
	if o.cfg.Logger != nil {
		o.cfg.Logger.Error("Commit metadata ignored: "+why+"; the partition is consumed from the committed offset", nil, watermill.LogFields{
			"consumer_group": o.cfg.Group, "topic": tp.Topic, "partition": tp.Partition,
			"committed": committed, "high_water_mark": hwm, "metadata_bytes": len(meta),
		})
	}
	return nil
}

// endClaim waits, until c's deadline, for the holds of c that are not
// abandoned to be released, so that their offsets are marked before the
// session commits, and flushes c's metadata.
func (o *Tracker) endClaim(tp Partition, c *claimState) {
	for {
		changed := o.Changes()
		o.mu.Lock()
		n, deadline := c.active, c.deadline
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
	if o.cfg.Commit != nil {
		o.commitEnd(tp, c)
		return
	}
	o.flush(tp, c) // before the session commits
}

// finishClaim ends c: the holds still open are lost, and the contexts of
// their records are cancelled.
func (o *Tracker) finishClaim(tp Partition, c *claimState) {
	o.update(func() {
		c.ended = true
		if c.revokedOnce {
			o.revoking.Add(-1)
		}
		// The holds still open are lost: their offsets stay uncommitted.
		o.holds -= c.counted
		c.counted, c.active = 0, 0
		c.held, c.settling = nil, nil
		c.msg = nil
		c.cancel()
		c.cancelEnd()
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

// Context returns the context of the claim's session as watermill-kafka
// sees it: cancelled once the claim is revoked and watermill-kafka's record
// is settled, so that its ConsumeClaim returns without handing out another
// record, and a record acknowledged unhandled then is not marked.
func (s markingSession) Context() context.Context { return s.claim.ctx }

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
	o.letGo(s.claim)
}

// MarkOffset marks offset, the next one to consume, as MarkMessage does.
func (s markingSession) MarkOffset(topic string, partition int32, offset int64, _ string) {
	if topic != s.tp.Topic || partition != s.tp.Partition {
		s.ConsumerGroupSession.MarkOffset(topic, partition, offset, "")
		return
	}
	o := s.marks
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mark(s.tp, s.claim, offset)
	o.letGo(s.claim)
}

// Commit commits the session's marks, unless the commits are
// transactional (Config.Commit): a transaction commits them then.
func (s markingSession) Commit() {
	if s.marks.cfg.Commit != nil {
		return
	}
	s.ConsumerGroupSession.Commit()
}

// ClaimContext returns a context that is cancelled when claim is revoked:
// its partition consumer closes (a rebalance, cooperative or not) or sess
// ends. Errors of the partition consumer read while it waits go to onError
// (nil drops them). Call stop when the claim is over.
func ClaimContext(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, onError func(*sarama.ConsumerError)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(sess.Context())
	ce, ok := claim.(consumerErrors)
	if !ok {
		return ctx, cancel
	}
	errs := ce.Errors()
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-errs:
				if !ok {
					return
				}
				if onError != nil {
					onError(err)
				}
			}
		}
	}()
	return ctx, cancel
}
