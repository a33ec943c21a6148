package kafkaevents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/txn"
	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// Exactly-once hand-offs (Config.Producer.ExactlyOnceHandoffs): the
// transactions of internal/txn write the retry and DLQ records and commit
// the offsets of the main and retry consumer groups.

const (
	// handoffTxnLinger is how long a hand-off waits for others before its
	// transaction starts.
	handoffTxnLinger = 10 * time.Millisecond
	// handoffTxnTimeout is the transaction timeout (Kafka Streams' default
	// under exactly-once): a transaction left open by a process that died
	// is aborted by the broker after it (and its next check), and until
	// then a read_committed reader of the retry topics and the DLQ waits at
	// its first record, and the next owner of a partition whose offsets it
	// carried waits for them to be stable.
	handoffTxnTimeout = 10 * time.Second
)

// handoffTransactionalID returns the transactional ID of the hand-offs:
// stable across restarts with Consumer.InstanceID, so that a restarted
// instance fences its predecessor and aborts its open transaction at once;
// random otherwise.
func (c Config) handoffTransactionalID() string {
	suffix := c.Consumer.InstanceID
	if suffix == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		suffix = hex.EncodeToString(b)
	}
	return c.ServiceName + ".handoffs." + suffix
}

// buildExactlyOnce initialises the hand-off transactions when
// Producer.ExactlyOnceHandoffs is set.
func (s *Stack) buildExactlyOnce(options) error {
	s.txnStats = newTxnStats()
	if !s.cfg.ExactlyOnce() {
		return nil
	}
	sc, err := s.cfg.Sarama()
	if err != nil {
		return err
	}
	id := s.cfg.handoffTransactionalID()
	sc.Producer.Partitioner = newPartitioner
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Transaction.ID = id
	sc.Producer.Transaction.Timeout = handoffTxnTimeout
	// The committer gathers the records itself; a transaction sends them
	// at once and its commit flushes them.
	sc.Producer.Flush.Frequency = 0
	client, err := s.connectClient(s.startCtx, "connecting the hand-off producer", sc)
	if err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: hand-off producer client: %w", err))
	}
	s.txnClient = client
	c, err := txn.New(txn.Config{
		Client: client, Linger: handoffTxnLinger, Interval: s.cfg.Consumer.CommitInterval,
		Observe: s.txnStats.observe, Logger: s.logger,
	})
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: Producer.ExactlyOnceHandoffs (KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS) is on, "+
			"and the brokers refused its %w; allow transactions for it (Write and Describe on the transactional IDs with the prefix %s.handoffs.), "+
			"or turn the option off", err, s.cfg.ServiceName))
	}
	s.txns, s.txnID = c, id
	s.txnSender = &txnSender{committer: c, tracer: s.tracer}
	return nil
}

// trackerCommit is the Commit of the offset trackers: nil without
// exactly-once hand-offs, so that the sessions commit.
func (s *Stack) trackerCommit() func(context.Context) error {
	if s.txns == nil {
		return nil
	}
	return s.txns.Flush
}

// retryClaims returns the tracker of the retry consumer's claims, whose
// offsets the hand-off transactions commit; nil without exactly-once
// hand-offs.
func (s *Stack) retryClaims(group string) *offsets.Tracker {
	if s.txns == nil {
		return nil
	}
	t := offsets.NewTracker(offsets.Config{
		ReleaseWait: min(s.cfg.Consumer.ShutdownTimeout, s.cfg.Consumer.RebalanceTimeout/2),
		Logger:      s.logger, Group: group, Commit: s.txns.Flush,
		Committed: func(tp offsets.Partition) (int64, string, error) { return s.committedIn(group, tp) },
	})
	s.txns.AddSource(t.Commits)
	return t
}

// reprocessCommits commits the positions of DLQ reprocess runs in the
// hand-off transactions, for their groups, which have no members: generation
// -1 and no member ID, as a producer without a consumer group's membership
// commits them.
type reprocessCommits struct{ c *txn.Committer }

// Track implements dlq.TransactionalCommits.
func (r reprocessCommits) Track(group, topic string, positions func() []dlq.RunPosition) (remove func()) {
	member := &sarama.ConsumerGroupMetadata{GroupID: group, GenerationID: sarama.GroupGenerationUndefined}
	return r.c.AddSource(func() []txn.Commit {
		ps := positions()
		out := make([]txn.Commit, len(ps))
		for i, p := range ps {
			out[i] = txn.Commit{Member: member, Topic: topic, Partition: p.Partition, Offset: p.Offset, Metadata: p.Metadata}
		}
		return out
	})
}

// Flush implements dlq.TransactionalCommits.
func (r reprocessCommits) Flush(ctx context.Context) error { return r.c.Flush(ctx) }

// Forget implements dlq.TransactionalCommits.
func (r reprocessCommits) Forget(group string) { r.c.Forget(group) }

// txnSender is the Sender of the retry and DLQ hand-offs under
// exactly-once: each record goes into the next hand-off transaction, with
// the offset past the record it replaces when that is held.
type txnSender struct {
	committer *txn.Committer
	tracer    *tracing.Tracer
}

// SendRecord implements wire.Sender: it returns once the transaction
// carrying rec committed, or with its error.
func (t *txnSender) SendRecord(ctx context.Context, rec *sarama.ProducerMessage) error {
	answer := make(chan error, 1)
	t.send(ctx, rec, nil, func(err error) { answer <- err })
	return <-answer
}

// SendRecordAsync implements wire.AsyncSender.
func (t *txnSender) SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error)) {
	t.send(ctx, rec, nil, done)
}

// SendHeldRecord implements wire.HeldSender.
func (t *txnSender) SendHeldRecord(ctx context.Context, rec *sarama.ProducerMessage, hold wire.OffsetHold, done func(error)) {
	h, _ := hold.(txn.Hold)
	t.send(ctx, rec, h, done)
}

func (t *txnSender) send(ctx context.Context, rec *sarama.ProducerMessage, hold txn.Hold, done func(error)) {
	end := startRecord(ctx, t.tracer, rec)
	t.committer.Send(rec, hold, func(err error) {
		end(rec.Partition, rec.Offset, err)
		done(err)
	})
}

// HandoffTransactionStats are the exactly-once hand-off transactions of
// this process, as the JSON metrics report them.
type HandoffTransactionStats struct {
	// TransactionalID is the producer's transactional ID.
	TransactionalID string `json:"transactionalId"`
	// Committed counts the committed transactions, Records the hand-off
	// records they carried.
	Committed int64 `json:"committed"`
	Records   int64 `json:"records"`
	// Aborted counts the aborted transactions by reason: produce (a record
	// was refused), offsets (the group refused the offsets, as it does a
	// member it has moved on from), commit (ending the transaction failed),
	// producer (no transactional producer could be initialised).
	Aborted map[string]int64 `json:"aborted"`
	// P50Ms, P99Ms and MaxMs are the durations of the last 512
	// transactions, from their start to their end.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// HandoffTransactions returns the hand-off transactions of this process,
// or nil when Producer.ExactlyOnceHandoffs is off.
func (s *Stack) HandoffTransactions() *HandoffTransactionStats {
	if s.txns == nil {
		return nil
	}
	return s.txnStats.stats(s.txnID)
}

// txnStats counts the hand-off transactions for the metrics.
type txnStats struct {
	mu        sync.Mutex
	committed int64
	records   int64
	aborted   map[string]int64
	durations []time.Duration // of the last transactions, a ring
	next      int

	total   *prometheus.CounterVec
	seconds prometheus.Histogram
}

// txnDurationsKept is how many durations txnStats keeps for its
// percentiles.
const txnDurationsKept = 512

func newTxnStats() *txnStats {
	return &txnStats{
		aborted: map[string]int64{},
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kafkaevents", Name: "handoff_transactions_total",
			Help: "Hand-off transactions (Producer.ExactlyOnceHandoffs), by outcome (committed, aborted) and the reason of an abort.",
		}, []string{"outcome", "reason"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kafkaevents", Name: "handoff_transaction_seconds",
			Help:    "Duration of the hand-off transactions (Producer.ExactlyOnceHandoffs), from their start to their commit or abort.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
	}
}

// collectors are the Prometheus collectors of the hand-off transactions.
func (t *txnStats) collectors() []prometheus.Collector {
	t.total.WithLabelValues("committed", "")
	return []prometheus.Collector{t.total, t.seconds}
}

func (t *txnStats) observe(o txn.Outcome) {
	if o.Err == nil {
		t.total.WithLabelValues("committed", "").Inc()
	} else {
		t.total.WithLabelValues("aborted", o.Reason).Inc()
	}
	t.seconds.Observe(o.Duration.Seconds())
	t.mu.Lock()
	defer t.mu.Unlock()
	if o.Err == nil {
		t.committed++
		t.records += int64(o.Records)
	} else {
		t.aborted[o.Reason]++
	}
	if len(t.durations) < txnDurationsKept {
		t.durations = append(t.durations, o.Duration)
		return
	}
	t.durations[t.next] = o.Duration
	t.next = (t.next + 1) % txnDurationsKept
}

func (t *txnStats) stats(id string) *HandoffTransactionStats {
	t.mu.Lock()
	st := &HandoffTransactionStats{TransactionalID: id, Committed: t.committed, Records: t.records, Aborted: maps.Clone(t.aborted)}
	ds := slices.Clone(t.durations)
	t.mu.Unlock()
	if len(ds) > 0 {
		slices.Sort(ds)
		st.P50Ms = millis(ds[len(ds)/2])
		st.P99Ms = millis(ds[len(ds)*99/100])
		st.MaxMs = millis(ds[len(ds)-1])
	}
	return st
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// claimTracker returns t as a delayedretry.ClaimTracker, nil when t is.
func claimTracker(t *offsets.Tracker) delayedretry.ClaimTracker {
	if t == nil {
		return nil
	}
	return retryClaims{t}
}

// retryClaims is the retry consumer's ClaimTracker under exactly-once
// hand-offs: its records are held and marked as the stack's consumer's are.
type retryClaims struct{ *offsets.Tracker }

// Track implements delayedretry.ClaimTracker.
func (r retryClaims) Track(parent context.Context, rec *sarama.ConsumerMessage) (delayedretry.TrackedRecord, error) {
	ctx, h, err := r.Tracker.Track(parent, rec)
	if err != nil {
		return delayedretry.TrackedRecord{}, err
	}
	if h == nil {
		return delayedretry.TrackedRecord{Skip: true}, nil
	}
	return delayedretry.TrackedRecord{Context: ctx, Done: h.Release, Abandon: h.Abandon}, nil
}
