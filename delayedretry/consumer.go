package delayedretry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/internal/lograte"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/wire"
)

// DeadLetterFunc stores a retry record that cannot be dispatched (unknown
// handler, missing or corrupt retry headers) in the DLQ with reason
// unroutable, returning once the broker acknowledged it.
type DeadLetterFunc func(ctx context.Context, rec *sarama.ConsumerMessage, reason wire.Reason, cause error) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Client is the sarama client the consumer group is built on; it must
	// not be shared with another consumer group. Required. Close does not
	// close it. Its Consumer.Group.InstanceId, when set, makes the member
	// static (KIP-345): restarted with the same ID within the session
	// timeout, it gets its partitions back without a rebalance.
	Client sarama.Client
	// GroupID is the consumer group of the retry topics. Required.
	GroupID string
	// Topics are the retry topics (Retrier.Topics). Required.
	Topics []string
	// Dispatcher delivers due records to their handler. Required.
	Dispatcher *dispatch.Dispatcher
	// DeadLetter stores unroutable records. Optional: when nil such records
	// are logged and skipped.
	DeadLetter DeadLetterFunc
	// Metrics receives delivered, delayed, waiting and lateness figures.
	// Optional. Default: NewMetrics().
	Metrics *Metrics
	// Now is the clock. Optional. Default: time.Now.
	Now func() time.Time
	// RedeliverBackoff is the wait before a rejected dispatch is tried
	// again; it doubles up to 5s. Optional. Default: 100ms.
	RedeliverBackoff time.Duration
	// MaxWait bounds how far ahead of now a record may be due. A record due
	// later is treated as corrupt and dead-lettered (reason unroutable)
	// instead of holding its partition, and every record behind it, until
	// then. Set it above the longest retry delay; the Stack uses the retry
	// topics' retention, which Config.Validate keeps above Retry.MaxDelay.
	// Optional. Default: 0, no bound.
	MaxWait time.Duration
	// Concurrency returns how many due records of one retry partition may
	// be dispatched to a handler at once: the handler's own concurrency
	// (kafkaevents.WithConcurrency). Above 1, a due record of that handler
	// is dispatched without waiting for the one before it; offsets are still
	// marked in order, each only once every record before it is done, and a
	// record that does not finish holds the partition's reading after
	// 1,024 more (inorder.Window). Optional. Default: 1 for every handler,
	// one record at a time.
	Concurrency func(handlerID string) int
	// Claims, when set, wraps the consumer group handler and gives the
	// context of each record it dispatches the record's position, so that
	// the record's hand-off can hold its offset (the Stack sets it when its
	// hand-offs are exactly once: the retry topics' offsets are then
	// committed by the Stack's transactions, with the records that replace
	// them, and the client must not auto-commit). Optional.
	Claims ClaimTracker
}

// ClaimTracker tracks the claims of the retry consumer's sessions; see
// ConsumerConfig.Claims.
type ClaimTracker interface {
	// WrapConsumerGroupHandler returns the handler the consumer group runs.
	WrapConsumerGroupHandler(h sarama.ConsumerGroupHandler) sarama.ConsumerGroupHandler
	// Track registers rec before it is handled. An error means rec's claim
	// is over: rec is left unmarked.
	Track(parent context.Context, rec *sarama.ConsumerMessage) (TrackedRecord, error)
}

// TrackedRecord is a record registered with a ClaimTracker.
type TrackedRecord struct {
	// Context is the context of the record's dispatched message.
	Context context.Context
	// Done says the record is done (delivered or dead-lettered); Abandon
	// gives it up undone, to be delivered again. Only the first call of
	// either counts.
	Done, Abandon func()
	// Skip is true when the record was settled before (the claim's
	// committed metadata says so): it is not delivered again.
	Skip bool
}

// Consumer reads the retry topics and dispatches each record when it is due.
// Offsets are marked only after the dispatch was acknowledged (or the record
// was dead-lettered), so a crash or a rebalance while a record waits loses
// nothing: the record is read again by whoever owns the partition next and
// still waits for its due time.
type Consumer struct {
	cfg    ConsumerConfig
	logger watermill.LoggerAdapter

	running atomic.Bool
	// inSession is set from a session's Setup to its Cleanup; waiting is
	// when the consumer began waiting for the next one (Run's start, or the
	// Cleanup of the last), in Unix nanoseconds.
	inSession atomic.Bool
	waiting   atomic.Int64
	// unknown limits the log lines about records naming no registered
	// handler, which anyone who can write to a retry topic can cause.
	unknown *lograte.Limiter
	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	closed  bool

	// held are the records waiting for their due time (held.go).
	heldMu sync.Mutex
	held   map[*sarama.ConsumerMessage]time.Time
}

// NewConsumer returns a Consumer, or an error naming a missing field.
func NewConsumer(cfg ConsumerConfig, logger watermill.LoggerAdapter) (*Consumer, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("delayedretry: ConsumerConfig.Client is required"))
	}
	if cfg.GroupID == "" {
		errs = append(errs, errors.New("delayedretry: ConsumerConfig.GroupID is required"))
	}
	if len(cfg.Topics) == 0 {
		errs = append(errs, errors.New("delayedretry: ConsumerConfig.Topics is required"))
	}
	if cfg.Dispatcher == nil {
		errs = append(errs, errors.New("delayedretry: ConsumerConfig.Dispatcher is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RedeliverBackoff <= 0 {
		cfg.RedeliverBackoff = 100 * time.Millisecond
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Consumer{cfg: cfg, logger: logger, unknown: lograte.New(0.1, 1)}, nil
}

// Running reports whether Run is consuming.
func (c *Consumer) Running() bool { return c.running.Load() }

// Waiting reports for how long the consumer, while Run runs, has been
// waiting to join its group's next session, which is when it consumes no
// retry topic: when the group rebalances, or waits for a member that left
// without leaving (killed) until that member's session timeout. It reports
// false while the consumer is in a session or Run does not run.
func (c *Consumer) Waiting() (time.Duration, bool) {
	if !c.running.Load() || c.inSession.Load() {
		return 0, false
	}
	since := c.waiting.Load()
	if since == 0 {
		return 0, false
	}
	return c.cfg.Now().Sub(time.Unix(0, since)), true
}

// GroupID returns the consumer group of the retry topics.
func (c *Consumer) GroupID() string { return c.cfg.GroupID }

// Run consumes until ctx is done or Close is called, then leaves the group
// (committing marked offsets) and returns nil. A static member (see
// ConsumerConfig.Client) commits but does not leave: its partitions wait
// for it until its session times out. It returns an error when the
// consumer group cannot be created or Run was already called.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.closed || c.done != nil {
		c.mu.Unlock()
		return errors.New("delayedretry: Consumer.Run called twice or after Close")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	c.mu.Unlock()
	defer close(c.done)
	defer cancel()

	group, err := sarama.NewConsumerGroupFromClient(c.cfg.GroupID, c.cfg.Client)
	if err != nil {
		return fmt.Errorf("delayedretry: consumer group %s: %w", c.cfg.GroupID, err)
	}
	defer func() { _ = group.Close() }()
	go func() {
		for err := range group.Errors() {
			c.logger.Error("Retry consumer error", err, nil)
		}
	}()

	c.waiting.Store(c.cfg.Now().UnixNano())
	c.running.Store(true)
	defer c.running.Store(false)
	var h sarama.ConsumerGroupHandler = &groupHandler{c: c, runCtx: ctx}
	if c.cfg.Claims != nil {
		h = c.cfg.Claims.WrapConsumerGroupHandler(h)
	}
	backoff := time.Second
	for ctx.Err() == nil {
		if err := group.Consume(ctx, c.cfg.Topics, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return nil
			}
			c.logger.Error("Retry consumer session failed; retrying", err, watermill.LogFields{"backoff": backoff.String()})
			if !sleepCtx(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
	return nil
}

// Close stops Run and waits for it to return. It is idempotent.
func (c *Consumer) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

type groupHandler struct {
	c      *Consumer
	runCtx context.Context
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error {
	h.c.inSession.Store(true)
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.c.waiting.Store(h.c.cfg.Now().UnixNano())
	h.c.inSession.Store(false)
	return nil
}

func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	// The claim's own context ends when it is revoked, with the
	// cooperative-sticky assignor too, where the session goes on: a record
	// waiting to be due or to be dispatched is then given up unmarked.
	ctx, stop := offsets.ClaimContext(sess, claim, h.c.logConsumerError)
	defer stop()
	cs := claimSession{ConsumerGroupSession: sess, ctx: ctx}
	// Records of a handler that takes several at once are dispatched beside
	// each other; their offsets are marked in order, and the claim waits for
	// them before it ends so that their marks precede its last commit.
	part := redeliver.NewPartition(func(next int64) { sess.MarkOffset(claim.Topic(), claim.Partition(), next, "") }, h.c.cfg.Concurrency, nil)
	defer part.Wait()
	for {
		select {
		case rec, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if ctx.Err() != nil || !h.c.handle(h.runCtx, cs, rec, part) {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// claimSession is a session whose context is its claim's.
type claimSession struct {
	sarama.ConsumerGroupSession
	ctx context.Context
}

func (s claimSession) Context() context.Context { return s.ctx }

// logConsumerError logs an error of a retry partition's consumer.
func (c *Consumer) logConsumerError(err *sarama.ConsumerError) {
	c.logger.Error("Retry partition consumer error", err.Err, watermill.LogFields{
		"topic": err.Topic, "partition": err.Partition,
	})
}

// errSessionEnded is what a delivery returns to Partition.Run when the
// session ended before the record was done.
var errSessionEnded = errors.New("delayedretry: session ended")

// handle waits for rec to be due and dispatches it, or starts dispatching it
// when its handler takes more than one record at a time. It returns false
// when the session ended before rec was done; rec is then left unmarked.
func (c *Consumer) handle(runCtx context.Context, sess sarama.ConsumerGroupSession, rec *sarama.ConsumerMessage, part *redeliver.Partition) bool {
	done, err := part.Admit(sess.Context(), rec.Offset)
	if err != nil {
		return false
	}
	abandon := func() {}
	if c.cfg.Claims != nil {
		tr, err := c.cfg.Claims.Track(runCtx, rec)
		if err != nil {
			return false
		}
		if tr.Skip {
			done()
			return true
		}
		inner := done
		runCtx, done, abandon = tr.Context, func() { tr.Done(); inner() }, tr.Abandon
	}
	hdr := wire.HeaderMap(rec.Headers)
	d, due, perr := parseRetryRecord(hdr, rec)
	if perr == nil && c.cfg.MaxWait > 0 && due.Sub(c.cfg.Now()) > c.cfg.MaxWait {
		perr = fmt.Errorf("%w: %s = %q is more than %s ahead", ErrCorruptRecord, wire.HeaderRetryAfter, hdr[wire.HeaderRetryAfter], c.cfg.MaxWait)
	}
	if perr == nil && !c.cfg.Dispatcher.Known(d.HandlerID) {
		perr = fmt.Errorf("%w: %q", dispatch.ErrUnknownHandler, d.HandlerID)
		c.logUnknown(rec, d.HandlerID)
	}
	if perr != nil && !c.cfg.Dispatcher.Known(d.HandlerID) {
		d.HandlerID = UnknownHandler // the counters of no handler it names
	}
	m := c.cfg.Metrics.of(d.HandlerID)
	if perr != nil {
		m.unroutable.Add(1)
		ok := c.deadLetter(runCtx, sess, rec, perr, done)
		if !ok {
			abandon()
		}
		return ok
	}
	if !c.waitDue(sess.Context(), rec, d.HandlerID, due) {
		abandon()
		return false
	}
	err = part.Run(sess.Context(), d.HandlerID, func() error {
		defer abandon() // does nothing once done was called
		if !c.deliver(runCtx, sess, rec, hdr, d, due, done) {
			return errSessionEnded
		}
		return nil
	})
	if err != nil {
		abandon()
	}
	return err == nil
}

// waitDue holds rec, of handlerID, until due. It returns false when ctx
// ended first.
func (c *Consumer) waitDue(ctx context.Context, rec *sarama.ConsumerMessage, handlerID string, due time.Time) bool {
	wait := due.Sub(c.cfg.Now())
	if wait <= 0 {
		return true
	}
	m := c.cfg.Metrics.of(handlerID)
	m.waiting.Add(1)
	m.delayed.Add(1)
	c.hold(rec, due)
	t := time.NewTimer(wait)
	select {
	case <-t.C:
		c.cfg.Metrics.of(handlerID).waiting.Add(-1)
		c.unhold(rec)
	case <-ctx.Done():
		t.Stop()
		c.cfg.Metrics.of(handlerID).waiting.Add(-1)
		c.unhold(rec)
		return false
	}
	// A timer may fire a little before the wall clock reaches due;
	// never deliver early.
	for now := c.cfg.Now(); now.Before(due); now = c.cfg.Now() {
		time.Sleep(due.Sub(now))
	}
	return true
}

// deliver dispatches rec, due at due, to its handler until the router
// acknowledges it, then calls done. It returns false when the session ended
// first; rec is then left unmarked.
func (c *Consumer) deliver(runCtx context.Context, sess sarama.ConsumerGroupSession, rec *sarama.ConsumerMessage, hdr map[string]string, d wire.Delivery, due time.Time, done func()) bool {
	// The headers become the message's metadata, less the Watermill UUID,
	// which is the message's own; a redelivery gets a copy, since the
	// handler may have changed the metadata it was given.
	r := redeliver.Record{UUID: hdr[wire.HeaderWatermillUUID], Payload: rec.Value, Delivery: d}
	delete(hdr, wire.HeaderWatermillUUID)
	backoff := c.cfg.RedeliverBackoff
	for attempt := 0; ; attempt++ {
		r.Metadata = message.Metadata(hdr)
		if attempt > 0 {
			r.Metadata = maps.Clone(r.Metadata)
		}
		c.cfg.Metrics.observeLateness(c.cfg.Now().Sub(due))
		err := c.cfg.Dispatcher.Deliver(sess.Context(), d.HandlerID, r.Message(runCtx))
		if err == nil {
			c.cfg.Metrics.of(d.HandlerID).delivered.Add(1)
			done()
			return true
		}
		if errors.Is(err, dispatch.ErrUnknownHandler) {
			c.cfg.Metrics.of(d.HandlerID).unroutable.Add(1)
			return c.deadLetter(runCtx, sess, rec, err, done)
		}
		if sess.Context().Err() != nil || errors.Is(err, dispatch.ErrClosed) {
			return false
		}
		c.logger.Info("Retry dispatch rejected; trying again", watermill.LogFields{
			"handler_id": d.HandlerID, "topic": rec.Topic, "partition": rec.Partition, "offset": rec.Offset, "err": err.Error(),
		})
		if !sleepCtx(sess.Context(), backoff) {
			return false
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// logUnknown logs, at most once every 10 s, that a retry record named no
// registered handler.
func (c *Consumer) logUnknown(rec *sarama.ConsumerMessage, handlerID string) {
	ok, suppressed := c.unknown.Allow()
	if !ok {
		return
	}
	c.logger.Info("Retry record names no registered handler; counted as unknown", watermill.LogFields{
		"handler_id": handlerID, "topic": rec.Topic, "partition": rec.Partition, "offset": rec.Offset,
		"similar_not_logged": suppressed,
	})
}

func (c *Consumer) deadLetter(ctx context.Context, sess sarama.ConsumerGroupSession, rec *sarama.ConsumerMessage, cause error, done func()) bool {
	if c.cfg.DeadLetter == nil {
		c.logger.Error("Unroutable retry record skipped (no DLQ)", cause, watermill.LogFields{
			"topic": rec.Topic, "partition": rec.Partition, "offset": rec.Offset,
		})
		done()
		return true
	}
	backoff := c.cfg.RedeliverBackoff
	for {
		err := c.cfg.DeadLetter(ctx, rec, wire.ReasonUnroutable, cause)
		if err == nil {
			done()
			return true
		}
		c.logger.Error("Storing unroutable retry record failed; trying again", err, watermill.LogFields{
			"topic": rec.Topic, "partition": rec.Partition, "offset": rec.Offset,
		})
		if !sleepCtx(sess.Context(), backoff) {
			return false
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ErrCorruptRecord is wrapped by the errors of retry records whose retry
// headers are missing or do not parse.
var ErrCorruptRecord = errors.New("delayedretry: corrupt retry record")

func parseRetryRecord(hdr map[string]string, rec *sarama.ConsumerMessage) (wire.Delivery, time.Time, error) {
	d := wire.Delivery{
		HandlerID: hdr[wire.HeaderHandlerID],
		Topic:     hdr[wire.HeaderOriginalTopic],
		Key:       rec.Key,
		Source:    wire.SourceRetry,
	}
	var errs []error
	if d.HandlerID == "" {
		errs = append(errs, fmt.Errorf("missing %s", wire.HeaderHandlerID))
	}
	if d.Topic == "" {
		errs = append(errs, fmt.Errorf("missing %s", wire.HeaderOriginalTopic))
	}
	n, err := strconv.Atoi(hdr[wire.HeaderRetryCount])
	if err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("%s = %q: want a whole number >= 1", wire.HeaderRetryCount, hdr[wire.HeaderRetryCount]))
	}
	d.RetryCount = n
	due, err := time.Parse(time.RFC3339Nano, hdr[wire.HeaderRetryAfter])
	if err != nil {
		errs = append(errs, fmt.Errorf("%s = %q: want an RFC 3339 time", wire.HeaderRetryAfter, hdr[wire.HeaderRetryAfter]))
	}
	if t, err := time.Parse(time.RFC3339Nano, hdr[wire.HeaderFirstFailedAt]); err == nil {
		d.FirstFailedAt = t
	}
	if p, err := strconv.ParseInt(hdr[wire.HeaderOriginalPartition], 10, 32); err == nil {
		if o, err := strconv.ParseInt(hdr[wire.HeaderOriginalOffset], 10, 64); err == nil {
			d.Partition, d.Offset, d.HasOffset = int32(p), o, true
		}
	}
	if r, err := strconv.Atoi(hdr[wire.HeaderReprocessCount]); err == nil && r > 0 {
		d.ReprocessCount = r
	}
	if len(errs) > 0 {
		return d, due, fmt.Errorf("%w: %w", ErrCorruptRecord, errors.Join(errs...))
	}
	return d, due, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
