package dlq

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

	"github.com/torix/kafkaevents/dispatch"
	kvoffsets "github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/redeliver"
)

var (
	// ErrAlreadyRunning is returned by Start and Reprocess when a run for the
	// topic is in progress. The HTTP layer maps it to 409.
	ErrAlreadyRunning = errors.New("dlq: reprocessing of this topic is already running")
	// ErrInvalidOptions is wrapped by the errors of bad ReprocessOptions.
	ErrInvalidOptions = errors.New("dlq: invalid reprocess options")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("dlq: reprocessor closed")
)

// Defaults of ReprocessOptions and ReprocessorConfig.
const (
	DefaultBatchSize    = 100
	DefaultTimeout      = 30 * time.Second
	DefaultMaxReprocess = 5
)

// ReprocessOptions are the options of one run, as the NestJS package's
// startReprocessing took them.
type ReprocessOptions struct {
	// Topic is the original topic whose DLQ records are reprocessed. Required.
	Topic string `json:"topic"`
	// BatchSize bounds how many records are dispatched before offsets are
	// committed. Optional. Default: 100.
	BatchSize int `json:"batchSize"`
	// Timeout bounds the run. Optional. Default: 30s.
	Timeout time.Duration `json:"timeout"`
	// StopOnError stops the run at the first record that fails again and
	// leaves it uncommitted (and not re-stored), so the next run starts with
	// it. When false, a record that fails again goes through the normal
	// retry and DLQ path and the run goes on.
	StopOnError bool `json:"stopOnError"`
}

// Validate checks the options after defaults.
func (o *ReprocessOptions) setDefaultsAndValidate() error {
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	var errs []error
	if o.Topic == "" {
		errs = append(errs, errors.New("topic is required"))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batchSize = %d: must be > 0", o.BatchSize))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout = %s: must be > 0", o.Timeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}

// Run states.
const (
	StateRunning        = "running"
	StateCompleted      = "completed"
	StateStopped        = "stopped"
	StateTimedOut       = "timed-out"
	StateStoppedOnError = "stopped-on-error"
	StateFailed         = "failed"
)

// Progress describes a run, running or finished.
type Progress struct {
	Topic      string    `json:"topic"`
	GroupID    string    `json:"groupId"`
	State      string    `json:"state"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Reprocessed counts records the handler completed.
	Reprocessed int64 `json:"reprocessed"`
	// Failed counts records that failed again.
	Failed int64 `json:"failed"`
	// Skipped counts records of other topics.
	Skipped int64 `json:"skipped"`
	// Parked counts records at the reprocess limit.
	Parked int64 `json:"parked"`
	// Remaining counts DLQ offsets (of any topic) between the run's position
	// and the end captured at its start.
	Remaining int64  `json:"remaining"`
	Error     string `json:"error,omitempty"`
	// RunID identifies the run and Holder the instance that runs it, when
	// the runs are kept in Kafka (ReprocessorConfig.Runs).
	RunID  string `json:"runId,omitempty"`
	Holder string `json:"holder,omitempty"`
}

// ReprocessorConfig configures a Reprocessor.
type ReprocessorConfig struct {
	// Client reads the DLQ and commits the runs' offsets. Required. Close
	// does not close it.
	Client sarama.Client
	// Queue is the DLQ being reprocessed. Required.
	Queue *Queue
	// Dispatcher delivers records to their handler. Required.
	Dispatcher *dispatch.Dispatcher
	// GroupPrefix names each topic's consumer group: {GroupPrefix}.{topic}.
	// Optional. Default: {Queue.Topic()}.reprocess, i.e.
	// {service}.dlq.reprocess.{topic}.
	GroupPrefix string
	// MaxReprocess parks records whose x-reprocess-count reached it.
	// Optional. Default: 5.
	MaxReprocess int
	// Concurrency returns how many records of one DLQ partition a handler
	// takes at once (kafkaevents.WithConcurrency). Above 1, the records of
	// that handler are delivered beside each other, up to that many, and a
	// partition's committed offset only moves past records that are all
	// done; key order is not kept. A record that does not finish holds its
	// partition's reading after inorder.Window (1,024) more records. With
	// StopOnError, and when nil, every record is delivered alone, in offset
	// order.
	Concurrency func(handlerID string) int
	// Transactions, when set, commits the runs' positions in the
	// transactions of the hand-offs (exactly-once hand-offs), at the
	// committer's interval and at the end of a run, instead of every
	// BatchSize records. Optional: nil commits them with OffsetCommit
	// requests.
	Transactions TransactionalCommits
	// Runs, once started, keeps the runs in Kafka: a run starts only when
	// no run of its topic holds the topic on any instance that shares the
	// runs topic, Status and Active show the runs of every instance, and
	// Stop stops a run wherever it runs. Optional: nil, or not started,
	// keeps the runs of this process only.
	Runs *RunLog
}

// Reprocessor replays DLQ records per original topic. One run per topic at a
// time; runs of different topics may go in parallel.
//
// A run reads each DLQ partition from the offset its group committed. A
// committed offset outside the partition's log, below its log start
// (retention deleted records no run read) or past its end (the DLQ was
// deleted and recreated, or lost records), is not trusted: the run logs it
// at ERROR level, once per partition, and reads that partition from its log
// start, as a consumer with auto.offset.reset=earliest would, so no record
// still in the DLQ is skipped.
type Reprocessor struct {
	cfg    ReprocessorConfig
	logger watermill.LoggerAdapter
	// browser reads the records that ReprocessRecord reprocesses.
	browser *Browser

	mu     sync.Mutex
	runs   map[string]*run
	last   map[string]Progress
	closed bool
	wg     sync.WaitGroup
	// singles are the ReprocessRecord calls in progress, cancelled by Close.
	singles map[*run]struct{}
}

type run struct {
	id string
	// leased is set once the run holds its topic in the runs topic.
	leased bool
	// lost is why the run was ended from the runs topic, if it was.
	lost                                            atomic.Pointer[string]
	cancel                                          context.CancelFunc
	p                                               Progress
	mu                                              sync.Mutex
	reprocessed, failed, skipped, parked, remaining atomic.Int64
}

// NewReprocessor returns a Reprocessor, or an error naming a missing field.
func NewReprocessor(cfg ReprocessorConfig, logger watermill.LoggerAdapter) (*Reprocessor, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("dlq: ReprocessorConfig.Client is required"))
	}
	if cfg.Queue == nil {
		errs = append(errs, errors.New("dlq: ReprocessorConfig.Queue is required"))
	}
	if cfg.Dispatcher == nil {
		errs = append(errs, errors.New("dlq: ReprocessorConfig.Dispatcher is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.GroupPrefix == "" {
		cfg.GroupPrefix = defaultGroupPrefix(cfg.Queue.Topic())
	}
	if cfg.MaxReprocess <= 0 {
		cfg.MaxReprocess = DefaultMaxReprocess
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	browser, err := NewBrowser(BrowserConfig{Client: cfg.Client, Topic: cfg.Queue.Topic(), GroupPrefix: cfg.GroupPrefix})
	if err != nil {
		return nil, err
	}
	return &Reprocessor{cfg: cfg, logger: logger, browser: browser, runs: map[string]*run{}, last: map[string]Progress{}}, nil
}

// Topic returns the DLQ topic.
func (r *Reprocessor) Topic() string { return r.cfg.Queue.Topic() }

// GroupID returns the consumer group of topic's runs.
func (r *Reprocessor) GroupID(topic string) string { return groupID(r.cfg.GroupPrefix, topic) }

// Start begins a run in the background and returns at once. It returns
// ErrAlreadyRunning when topic is being reprocessed, an error wrapping
// ErrInvalidOptions for bad options, or ErrClosed.
func (r *Reprocessor) Start(opts ReprocessOptions) error {
	rn, ctx, err := r.begin(context.Background(), &opts)
	if err != nil {
		return err
	}
	go func() {
		defer r.wg.Done()
		_, _ = r.execute(ctx, rn, opts)
	}()
	return nil
}

// Reprocess runs synchronously and returns the run's final progress. The
// error is the one that ended the run early, if any.
func (r *Reprocessor) Reprocess(ctx context.Context, opts ReprocessOptions) (Progress, error) {
	rn, runCtx, err := r.begin(ctx, &opts)
	if err != nil {
		return Progress{}, err
	}
	defer r.wg.Done()
	stop := context.AfterFunc(ctx, rn.cancel)
	defer stop()
	return r.execute(runCtx, rn, opts)
}

// claimTimeout bounds the claim of a run's topic in the runs topic.
const claimTimeout = 10 * time.Second

func (r *Reprocessor) begin(ctx context.Context, opts *ReprocessOptions) (*run, context.Context, error) {
	if err := opts.setDefaultsAndValidate(); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, ErrClosed
	}
	if other, ok := r.runs[opts.Topic]; ok {
		r.mu.Unlock()
		p := other.snapshot()
		if p.RunID != "" {
			return nil, nil, &RunHeldError{Topic: opts.Topic, RunID: p.RunID, Holder: p.Holder, Since: p.StartedAt}
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrAlreadyRunning, opts.Topic)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	rn := &run{id: watermill.NewShortUUID(), cancel: cancel, p: Progress{Topic: opts.Topic, GroupID: r.GroupID(opts.Topic), State: StateRunning, StartedAt: time.Now().UTC()}}
	r.runs[opts.Topic] = rn
	r.wg.Add(1)
	r.mu.Unlock()
	if log := r.cfg.Runs; log.Started() {
		cctx, cancelClaim := context.WithTimeout(ctx, claimTimeout)
		err := log.acquire(cctx, opts.Topic, rn.id, rn.snapshot(), rn.stop, rn.end)
		cancelClaim()
		if err != nil {
			cancel()
			r.mu.Lock()
			delete(r.runs, opts.Topic)
			r.mu.Unlock()
			r.wg.Done()
			return nil, nil, err
		}
		rn.leased = true
		rn.mu.Lock()
		rn.p.RunID, rn.p.Holder = rn.id, log.Holder()
		rn.mu.Unlock()
	}
	return rn, runCtx, nil
}

// Stop ends the run of topic, if any, and reports whether there was one. The
// run commits what it completed. With the runs in Kafka, a run of another
// instance is asked to stop, and stops once that instance reads the
// request.
func (r *Reprocessor) Stop(topic string) bool {
	r.mu.Lock()
	rn, ok := r.runs[topic]
	r.mu.Unlock()
	if ok {
		rn.stop()
		return true
	}
	if log := r.cfg.Runs; log.Started() {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		defer cancel()
		n, err := log.requestStop(ctx, topic)
		if err != nil {
			r.logger.Error("Could not ask for the stop of a DLQ reprocess run", err, watermill.LogFields{"topic": topic})
		}
		return n > 0
	}
	return false
}

// StopAll ends every run and returns how many there were, asking the runs
// of other instances to stop when the runs are kept in Kafka.
func (r *Reprocessor) StopAll() int {
	n := r.stopLocal()
	if log := r.cfg.Runs; log.Started() {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		defer cancel()
		running, _ := log.status()
		for i := range running {
			topic := running[i].Topic
			if r.localRun(topic) {
				continue
			}
			m, err := log.requestStop(ctx, topic)
			if err != nil {
				r.logger.Error("Could not ask for the stop of a DLQ reprocess run", err, watermill.LogFields{"topic": topic})
			}
			n += m
		}
	}
	return n
}

// localRun reports whether topic has a run in this process.
func (r *Reprocessor) localRun(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.runs[topic]
	return ok
}

// stopLocal ends the runs of this process and returns how many there were.
func (r *Reprocessor) stopLocal() int {
	r.mu.Lock()
	runs := make([]*run, 0, len(r.runs))
	for _, rn := range r.runs {
		runs = append(runs, rn)
	}
	r.mu.Unlock()
	for _, rn := range runs {
		rn.stop()
	}
	return len(runs)
}

func (rn *run) stop() {
	rn.mu.Lock()
	if rn.p.State == StateRunning {
		rn.p.State = StateStopped
	}
	rn.mu.Unlock()
	rn.cancel()
}

// end stops the run because it no longer holds its lease: the lease was
// taken over, or could not be renewed.
func (rn *run) end(reason string) {
	rn.lost.Store(&reason)
	rn.stop()
}

// Active reports whether topic is being reprocessed; with "" whether any
// topic is. With the runs in Kafka, the runs of every instance count.
func (r *Reprocessor) Active(topic string) bool {
	r.mu.Lock()
	n := len(r.runs)
	_, ok := r.runs[topic]
	r.mu.Unlock()
	if (topic == "" && n > 0) || ok {
		return true
	}
	if log := r.cfg.Runs; log.Started() {
		if topic == "" {
			running, _ := log.status()
			return len(running) > 0
		}
		_, held := log.holding(topic)
		return held
	}
	return false
}

// Status lists the runs in progress and the last finished run of each topic.
type Status struct {
	Running []Progress          `json:"running"`
	Last    map[string]Progress `json:"last"`
}

// Status returns the runs in progress with their progress and the last
// result per topic. With the runs in Kafka, it has the runs of every
// instance, as of their last renewal for those of other instances, and the
// last runs survive restarts.
func (r *Reprocessor) Status() Status {
	r.mu.Lock()
	s := Status{Running: []Progress{}, Last: map[string]Progress{}}
	mine := map[string]bool{}
	for _, rn := range r.runs {
		p := rn.snapshot()
		s.Running = append(s.Running, p)
		mine[p.Topic] = true
	}
	maps.Copy(s.Last, r.last)
	r.mu.Unlock()
	if log := r.cfg.Runs; log.Started() {
		running, last := log.status()
		for i := range running {
			if !mine[running[i].Topic] {
				s.Running = append(s.Running, running[i])
			}
		}
		for topic := range last {
			if old, ok := s.Last[topic]; !ok || last[topic].FinishedAt.After(old.FinishedAt) {
				s.Last[topic] = last[topic]
			}
		}
	}
	return s
}

func (rn *run) snapshot() Progress {
	rn.mu.Lock()
	p := rn.p
	rn.mu.Unlock()
	p.Reprocessed, p.Failed, p.Skipped, p.Parked, p.Remaining =
		rn.reprocessed.Load(), rn.failed.Load(), rn.skipped.Load(), rn.parked.Load(), rn.remaining.Load()
	return p
}

// Close stops every run and waits for them to finish. It is idempotent.
func (r *Reprocessor) Close() error {
	r.mu.Lock()
	r.closed = true
	for rn := range r.singles {
		rn.cancel()
	}
	r.mu.Unlock()
	r.stopLocal()
	r.wg.Wait()
	return nil
}

var errStoppedOnError = errors.New("dlq: record failed again; run stopped (stopOnError)")

func (r *Reprocessor) execute(ctx context.Context, rn *run, opts ReprocessOptions) (Progress, error) {
	ctx, cancelTimeout := context.WithTimeout(ctx, opts.Timeout)
	defer cancelTimeout()
	stopRenewing := r.renew(rn, opts.Topic)
	err := r.reprocess(ctx, rn, opts)
	stopRenewing()

	rn.mu.Lock()
	if lost := rn.lost.Load(); lost != nil && rn.p.Error == "" {
		rn.p.Error = "run ended: " + *lost
	}
	switch {
	case errors.Is(err, errStoppedOnError):
		rn.p.State = StateStoppedOnError
	case rn.p.State == StateStopped:
	case errors.Is(err, context.DeadlineExceeded):
		rn.p.State = StateTimedOut
	case err != nil:
		rn.p.State = StateFailed
	default:
		rn.p.State = StateCompleted
	}
	if err != nil && rn.p.State != StateStopped && rn.p.State != StateTimedOut {
		rn.p.Error = err.Error()
	}
	rn.p.FinishedAt = time.Now().UTC()
	rn.mu.Unlock()
	rn.cancel()
	p := rn.snapshot()

	r.cfg.Queue.Metrics().add(p.Reprocessed, p.Skipped, p.Failed, p.Parked)
	if rn.leased {
		fctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		if ferr := r.cfg.Runs.finish(fctx, opts.Topic, rn.id, p); ferr != nil {
			r.logger.Error("Could not record the end of a DLQ reprocess run; other instances see it abandoned once its lease expires", ferr, watermill.LogFields{"topic": opts.Topic, "run": rn.id})
		}
		cancel()
	}
	r.mu.Lock()
	delete(r.runs, opts.Topic)
	r.last[opts.Topic] = p
	r.mu.Unlock()
	r.logger.Info("DLQ reprocessing finished", watermill.LogFields{
		"topic": p.Topic, "state": p.State, "reprocessed": p.Reprocessed, "failed": p.Failed,
		"skipped": p.Skipped, "parked": p.Parked, "remaining": p.Remaining,
	})
	if p.State == StateStopped || p.State == StateTimedOut {
		return p, nil
	}
	return p, err
}

// renew renews the lease of rn, when it holds one, every Lease/6 with its
// progress, until the function it returns is called. A run that could not
// renew its lease for Lease/2 ends: once the lease expires, another
// instance may take its topic.
func (r *Reprocessor) renew(rn *run, topic string) (stop func()) {
	if !rn.leased {
		return func() {}
	}
	log := r.cfg.Runs
	every := log.cfg.Lease / 6
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := log.renew(ctx, topic, rn.id, rn.snapshot())
			cancel()
			if err == nil {
				last = time.Now()
				continue
			}
			if since := time.Since(last); since > log.cfg.Lease/2 {
				r.logger.Error("DLQ reprocess run ended: its lease could not be renewed", err, watermill.LogFields{"topic": topic, "run": rn.id, "since": since.String()})
				rn.end(fmt.Sprintf("its lease could not be renewed for %s: %v", since.Round(time.Millisecond), err))
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// flushTimeout bounds the last commit of a run whose positions are
// committed in transactions.
const flushTimeout = 15 * time.Second

// errOffsetOutOfRange is logged with a committed offset that startOffset
// does not trust.
var errOffsetOutOfRange = errors.New("dlq: committed offset out of range")

// reprocess reads every partition of the DLQ, from the position the run's
// group committed up to the end captured now, and hands the records of
// opts.Topic back to their handlers (see partitionReader). A partition
// whose committed offset is not trusted (see startOffset) is read from its
// log start, and that position is committed even when the partition is
// empty. Partitions are read in parallel, except with StopOnError, where
// the run must stop at one record, and the first error stops every
// partition. The run's position is committed every BatchSize records and at
// the end.
func (r *Reprocessor) reprocess(ctx context.Context, rn *run, opts ReprocessOptions) error {
	dlqTopic := r.cfg.Queue.Topic()
	client := r.cfg.Client
	parts, err := client.Partitions(dlqTopic)
	if err != nil {
		return fmt.Errorf("dlq: partitions of %s: %w", dlqTopic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()
	offsets := groupCommits{client: client, group: r.GroupID(opts.Topic)}
	committed, metadata, err := offsets.fetchWithMetadata(dlqTopic, parts)
	if err != nil {
		return err
	}
	spans, err := partitionSpans(client, dlqTopic, parts, committed)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	reader := &partitionReader{
		r: r, rn: rn, opts: opts, consumer: consumer, topic: dlqTopic,
		commits: newBatchCommits(offsets, dlqTopic, opts.BatchSize), concurrency: r.cfg.Concurrency, fail: cancel,
	}
	txns := r.cfg.Transactions
	if txns != nil {
		reader.positions = &runPositions{parts: map[int32]*redeliver.Partition{}}
		reader.done = map[int32]*kvoffsets.Window{}
		for p, md := range metadata {
			if w, ok := kvoffsets.DecodeMetadata(md, committed[p]); ok {
				reader.done[p] = w
			}
		}
	}
	for i, s := range spans {
		spans[i].records = countRecords(client, dlqTopic, s)
		rn.remaining.Add(spans[i].records)
		if s.outOfRange {
			r.logger.Error("Committed reprocess offset is outside the DLQ partition's log; reading the partition from its log start", errOffsetOutOfRange, watermill.LogFields{
				"group": offsets.group, "dlq_topic": dlqTopic, "partition": s.partition,
				"committed_offset": s.committed, "log_start_offset": s.from, "end_offset": s.end,
			})
			// Replaced even if the span is empty, so that the DLQ
			// growing past the untrusted offset does not make it look
			// valid to the next run.
			reader.commits.mark(s.partition, s.from)
			// Its metadata names offsets of another log too.
			delete(reader.done, s.partition)
		}
	}
	parallel := len(spans)
	if opts.StopOnError {
		parallel, reader.concurrency = 1, nil
	}
	var commitErr error
	if txns != nil {
		// The replaced positions first, outside the transactions, which
		// then may commit below what they committed before.
		if err := reader.commits.commit(); err != nil {
			return err
		}
		txns.Forget(offsets.group)
		remove := txns.Track(offsets.group, dlqTopic, reader.positions.positions)
		errs := eachPartition(ctx, cancel, spans, parallel, reader.read)
		fctx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		commitErr = txns.Flush(fctx)
		cancelFlush()
		remove()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return errors.Join(cause, commitErr)
		}
		return errors.Join(append(errs, commitErr)...)
	}
	errs := eachPartition(ctx, cancel, spans, parallel, reader.read)
	commitErr = reader.commits.commit()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		// Partitions stopped by another's failure report the cancellation;
		// the cause is the error that matters.
		return errors.Join(cause, commitErr)
	}
	return errors.Join(append(errs, commitErr)...)
}
