package txn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/wire"
)

// Hold is the offset hold of a hand-off's original record.
type Hold interface {
	// Lost is closed once the hold can no longer be released: the
	// partition of the original is no longer this consumer's, and the
	// original will be delivered again. A hand-off whose hold is lost when
	// its transaction starts is not written.
	Lost() <-chan struct{}
	// Settling counts the hold as released (true) in the offsets its
	// Source reports, while a transaction carrying the hand-off's record is
	// being committed, or as open again (false) when that transaction
	// failed. The hold itself stays open until the hand-off's done function
	// releases it.
	Settling(bool)
}

// Commit is the offset of one partition that a consumer group member
// commits.
type Commit struct {
	// Member is the group member, with its generation: the coordinator
	// refuses the commit of a member it no longer knows.
	Member    *sarama.ConsumerGroupMetadata
	Topic     string
	Partition int32
	// Offset is the next offset to consume; Metadata goes with it.
	Offset   int64
	Metadata string
}

// Source reports the offsets of the partitions its consumer holds, with the
// holds marked settling counted as released. It is called from the
// committer's goroutine and must not block.
type Source func() []Commit

// Outcome is the result of one transaction, for metrics.
type Outcome struct {
	// Records is how many hand-off records it carried, Offsets how many
	// partition offsets.
	Records, Offsets int
	// Duration is from its start to its commit or abort.
	Duration time.Duration
	// Err is nil when it committed; Reason then is empty, else one of
	// "produce" (a record was refused), "offsets" (the group refused the
	// offsets, as it does a zombie member's), "commit" (ending the
	// transaction failed) or "producer" (no producer could be initialised).
	Err    error
	Reason string
}

// Config configures a Committer.
type Config struct {
	// Client is the client of the transactional producer: its config sets
	// Producer.Transaction.ID, Producer.Idempotent, RequiredAcks
	// WaitForAll, Net.MaxOpenRequests 1 and Producer.Return.Successes.
	// Required. Close does not close it.
	Client sarama.Client
	// Linger is how long the first hand-off waits for others before their
	// transaction starts. Optional. Default: 10ms.
	Linger time.Duration
	// Interval is how often the offsets alone are committed, when one
	// moved. Optional. Default: 1s.
	Interval time.Duration
	// Observe receives the outcome of each transaction, on the committer's
	// goroutine. Optional.
	Observe func(Outcome)
	// Logger reports aborted transactions. Optional.
	Logger watermill.LoggerAdapter
}

// ErrClosed is given to the done function of a hand-off sent after Close.
var ErrClosed = errors.New("txn: committer closed")

// Committer writes hand-offs and commits offsets in transactions. Create it
// with New, Start it, and Close it after the consumers whose offsets it
// commits stopped.
type Committer struct {
	cfg    Config
	logger watermill.LoggerAdapter

	mu       sync.Mutex
	pending  []*item
	sources  []source
	forget   []string
	flushes  []chan error
	closed   bool
	started  bool
	kick     chan struct{}
	flushNow chan struct{}
	closing  chan struct{}
	done     chan struct{}

	// Used by the committer's goroutine alone.
	producer sarama.AsyncProducer
	results  sync.WaitGroup
	last     map[partitionKey]Commit
}

// source is a Source added, with what identifies it for its removal.
type source struct {
	id      *int
	offsets Source
}

type partitionKey struct {
	group     string
	topic     string
	partition int32
}

// item is one hand-off: its record, its original's hold, and what to call
// once its transaction ended.
type item struct {
	rec  *sarama.ProducerMessage
	hold Hold
	done func(error)
	wg   *sync.WaitGroup
	err  error
}

// New returns a Committer, or an error naming a missing field.
func New(cfg Config) (*Committer, error) {
	if cfg.Client == nil {
		return nil, errors.New("txn: Config.Client is required")
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 10 * time.Millisecond
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Committer{
		cfg: cfg, logger: logger,
		kick: make(chan struct{}, 1), flushNow: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{}),
		last: map[partitionKey]Commit{},
	}, nil
}

// Start initialises the transactional producer (InitProducerId, which
// fences an earlier producer of the same transactional ID and aborts its
// open transaction) and starts committing. It returns the broker's error
// when the producer cannot be initialised: the brokers do not support
// transactions, or an ACL denies the transactional ID.
func (c *Committer) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return errors.New("txn: Start called twice or after Close")
	}
	if err := c.newProducer(); err != nil {
		return err
	}
	c.started = true
	go c.loop()
	return nil
}

// AddSource adds the offsets of a consumer to every transaction, until
// remove is called.
func (c *Committer) AddSource(s Source) (remove func()) {
	id := new(int)
	c.mu.Lock()
	c.sources = append(c.sources, source{id: id, offsets: s})
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.sources = slices.DeleteFunc(c.sources, func(s source) bool { return s.id == id })
		c.mu.Unlock()
	}
}

// Forget forgets the offsets committed for group, so that the next
// transaction may commit lower ones: for a group whose offsets were
// committed outside the committer since (a reprocess run that replaced an
// offset it did not trust).
func (c *Committer) Forget(group string) {
	c.mu.Lock()
	c.forget = append(c.forget, group)
	c.mu.Unlock()
}

// Send adds rec, the successor of a record whose offset hold is given (nil
// when the record is not held), to the next transaction. done is called
// once, from the committer's goroutine, with nil when the transaction
// committed, or with its error when it was aborted; it must not block.
func (c *Committer) Send(rec *sarama.ProducerMessage, hold Hold, done func(error)) {
	if err := c.checkSize(rec); err != nil {
		// Refused before it could make its transaction fail, and with it
		// the other hand-offs of the transaction.
		done(err)
		return
	}
	c.mu.Lock()
	if c.closed || !c.started {
		c.mu.Unlock()
		done(ErrClosed)
		return
	}
	c.pending = append(c.pending, &item{rec: rec, hold: hold, done: done})
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Flush runs a transaction now, with the hand-offs waiting and the offsets
// as they are, and returns its error, or ctx's when ctx ends first.
func (c *Committer) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.closed || !c.started {
		c.mu.Unlock()
		return ErrClosed
	}
	c.flushes = append(c.flushes, ch)
	c.mu.Unlock()
	select {
	case c.flushNow <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close runs a last transaction and closes the producer. It is
// idempotent.
func (c *Committer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	if !started {
		return nil
	}
	close(c.closing)
	<-c.done
	return nil
}

// loop runs the transactions until Close.
func (c *Committer) loop() {
	defer close(c.done)
	defer c.closeProducer()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			c.cycle()
			c.failPending()
			return
		case <-t.C:
		case <-c.flushNow:
		case <-c.kick:
			// Let other hand-offs join, unless a flush is waited for.
			lt := time.NewTimer(c.cfg.Linger)
			select {
			case <-lt.C:
			case <-c.flushNow:
			case <-c.closing:
			}
			lt.Stop()
		}
		c.cycle()
	}
}

// failPending gives ErrClosed to what was sent during the last transaction.
func (c *Committer) failPending() {
	c.mu.Lock()
	batch, flushes := c.pending, c.flushes
	c.pending, c.flushes = nil, nil
	c.mu.Unlock()
	for _, it := range batch {
		it.done(ErrClosed)
	}
	for _, f := range flushes {
		f <- ErrClosed
	}
}

// cycle runs one transaction with what is waiting.
func (c *Committer) cycle() {
	c.mu.Lock()
	batch, flushes, forget := c.pending, c.flushes, c.forget
	c.pending, c.flushes, c.forget = nil, nil, nil
	sources := make([]Source, len(c.sources))
	for i, s := range c.sources {
		sources[i] = s.offsets
	}
	c.mu.Unlock()
	for _, g := range forget {
		for k := range c.last {
			if k.group == g {
				delete(c.last, k)
			}
		}
	}
	live := batch[:0]
	for _, it := range batch {
		if it.hold != nil && isLost(it.hold) {
			it.done(wire.ErrHoldLost)
			continue
		}
		live = append(live, it)
	}
	batch = live
	for _, it := range batch {
		if it.hold != nil {
			it.hold.Settling(true)
		}
	}
	var err error
	for round := 1; ; round++ {
		err = c.transact(batch, sources)
		if err == nil {
			break
		}
		// The records the broker refused fail; the others go again at
		// once, in a transaction without them, twice at most.
		var refused, rest []*item
		for _, it := range batch {
			if it.err != nil {
				refused = append(refused, it)
			} else {
				rest = append(rest, it)
			}
		}
		if len(refused) == 0 || len(rest) == 0 || round == 3 {
			break
		}
		finish(refused, err)
		batch = rest
	}
	finish(batch, err)
	for _, f := range flushes {
		f <- err
	}
}

// finish ends the hand-offs of items with err: nil once their transaction
// committed.
func finish(items []*item, err error) {
	for _, it := range items {
		if err != nil && it.hold != nil {
			it.hold.Settling(false)
		}
		it.done(err)
	}
}

// ErrRecordTooLarge is given to the done function of a hand-off whose record
// is larger than the producer's Producer.MaxMessageBytes.
var ErrRecordTooLarge = errors.New("txn: record larger than configured Producer.MaxMessageBytes")

// checkSize refuses rec when sarama would, before it joins a transaction.
func (c *Committer) checkSize(rec *sarama.ProducerMessage) error {
	conf := c.cfg.Client.Config()
	version := 1
	if conf.Version.IsAtLeast(sarama.V0_11_0_0) {
		version = 2
	}
	if size := rec.ByteSize(version); size > conf.Producer.MaxMessageBytes {
		return fmt.Errorf("%w: %d > %d bytes", ErrRecordTooLarge, size, conf.Producer.MaxMessageBytes)
	}
	return nil
}

func isLost(h Hold) bool {
	select {
	case <-h.Lost():
		return true
	default:
		return false
	}
}

// changed returns the commits of sources that move an offset, or change
// the metadata at the same offset, since the last transaction. An offset
// below the one committed last is never committed.
func (c *Committer) changed(sources []Source) []Commit {
	var out []Commit
	for _, s := range sources {
		for _, cm := range s() {
			k := partitionKey{cm.Member.GroupID, cm.Topic, cm.Partition}
			if last, ok := c.last[k]; ok && (cm.Offset < last.Offset || (cm.Offset == last.Offset && cm.Metadata == last.Metadata)) {
				continue
			}
			out = append(out, cm)
		}
	}
	return out
}

// transact writes batch and the offsets of sources in one transaction.
func (c *Committer) transact(batch []*item, sources []Source) error {
	commits := c.changed(sources)
	if len(batch) == 0 && len(commits) == 0 {
		return nil
	}
	start := time.Now()
	out := Outcome{Records: len(batch)}
	fail := func(reason string, err error) error {
		out.Duration, out.Err, out.Reason = time.Since(start), err, reason
		c.abort()
		c.observe(out)
		if len(batch) > 0 {
			c.logger.Error("Hand-off transaction aborted; its records are sent again", err, watermill.LogFields{
				"records": len(batch), "reason": reason,
			})
		}
		return err
	}
	if c.producer == nil {
		if err := c.newProducer(); err != nil {
			return fail("producer", err)
		}
	}
	p := c.producer
	if err := p.BeginTxn(); err != nil {
		return fail("producer", fmt.Errorf("txn: begin: %w", err))
	}
	var wg sync.WaitGroup
	wg.Add(len(batch))
	for _, it := range batch {
		it.wg, it.err = &wg, nil
		it.rec.Metadata = it
		p.Input() <- it.rec
	}
	if len(batch) > 0 {
		// The marks made while the records were sent count too.
		commits = c.changed(sources)
	}
	out.Offsets = len(commits)
	for _, g := range byMember(commits) {
		if err := p.AddOffsetsToTxnWithGroupMetadata(g.offsets, g.member); err != nil {
			wg.Wait()
			return fail("offsets", fmt.Errorf("txn: offsets of group %s: %w", g.member.GroupID, err))
		}
	}
	err := p.CommitTxn()
	wg.Wait()
	if err != nil {
		reason := "commit"
		for _, it := range batch {
			if it.err != nil {
				reason, err = "produce", fmt.Errorf("txn: record to %s: %w", it.rec.Topic, it.err)
				break
			}
		}
		if isOffsetsRefused(err) {
			reason = "offsets"
		}
		return fail(reason, err)
	}
	for _, cm := range commits {
		c.last[partitionKey{cm.Member.GroupID, cm.Topic, cm.Partition}] = cm
	}
	out.Duration = time.Since(start)
	c.observe(out)
	return nil
}

// isOffsetsRefused reports whether err is the group coordinator refusing
// the offsets of a member it no longer knows.
func isOffsetsRefused(err error) bool {
	return errors.Is(err, sarama.ErrIllegalGeneration) || errors.Is(err, sarama.ErrUnknownMemberId) ||
		errors.Is(err, sarama.ErrFencedInstancedId) || errors.Is(err, sarama.ErrRebalanceInProgress)
}

func (c *Committer) observe(o Outcome) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(o)
	}
}

// abort aborts the transaction in progress; a producer that cannot abort
// (a fatal error: fenced, or its state lost) is closed, and the next
// transaction initialises a new one.
func (c *Committer) abort() {
	p := c.producer
	if p == nil {
		return
	}
	if p.TxnStatus()&sarama.ProducerTxnFlagFatalError == 0 {
		if err := p.AbortTxn(); err == nil {
			return
		}
	}
	c.logger.Info("Transactional producer closed after a fatal error; a new one is initialised", nil)
	c.closeProducer()
}

// group is the offsets of one member.
type group struct {
	member  *sarama.ConsumerGroupMetadata
	offsets map[string][]*sarama.PartitionOffsetMetadata
}

func byMember(commits []Commit) []group {
	var out []group
	idx := map[sarama.ConsumerGroupMetadata]int{}
	for _, cm := range commits {
		k := *cm.Member
		k.GroupInstanceID = nil
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, group{member: cm.Member, offsets: map[string][]*sarama.PartitionOffsetMetadata{}})
		}
		meta := cm.Metadata
		out[i].offsets[cm.Topic] = append(out[i].offsets[cm.Topic], &sarama.PartitionOffsetMetadata{
			Partition: cm.Partition, Offset: cm.Offset, LeaderEpoch: -1, Metadata: &meta,
		})
	}
	return out
}

// newProducer initialises the transactional producer and the goroutines
// that read its results.
func (c *Committer) newProducer() error {
	p, err := sarama.NewAsyncProducerFromClient(c.cfg.Client)
	if err != nil {
		return fmt.Errorf("transactional producer %q: %w", c.cfg.Client.Config().Producer.Transaction.ID, err)
	}
	c.producer = p
	c.results.Add(2)
	go func() {
		defer c.results.Done()
		for rec := range p.Successes() {
			rec.Metadata.(*item).wg.Done()
		}
	}()
	go func() {
		defer c.results.Done()
		for perr := range p.Errors() {
			it := perr.Msg.Metadata.(*item)
			it.err = perr.Err
			it.wg.Done()
		}
	}()
	return nil
}

// closeProducer closes the producer, if any, and waits for its results.
func (c *Committer) closeProducer() {
	if c.producer == nil {
		return
	}
	c.producer.AsyncClose()
	c.results.Wait()
	c.producer = nil
}
