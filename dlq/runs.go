package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/wire"
)

// Defaults of RunLogConfig.
const (
	// DefaultLease is how long a run holds its topic without renewing it.
	DefaultLease = 30 * time.Second
)

// StateAbandoned is the state of a run whose instance stopped renewing its
// lease before it finished (it was killed, or lost Kafka): another run may
// take its topic, and starts at the position it committed.
const StateAbandoned = "abandoned"

// RunLogConfig configures a RunLog.
type RunLogConfig struct {
	// Sender writes the runs topic. Required.
	Sender wire.Sender
	// Topic is the runs topic: one partition, compacted. Required.
	Topic string
	// Instance is this instance's identity across restarts, such as
	// Consumer.InstanceID: a run claimed by an instance of the same
	// Instance takes over the lease of its predecessor's run at once (the
	// predecessor stopped, or is fenced), instead of waiting for it to
	// expire. Optional.
	Instance string
	// Holder names this instance in the runs it holds, as every instance
	// shows them. Optional. Default: Instance, or else the host name and
	// the process ID.
	Holder string
	// Lease is how long a run holds its topic after its last renewal. A run
	// renews it every Lease/6 with its progress, and stops itself when it
	// could not renew it for Lease/2. Optional. Default: 30s.
	Lease time.Duration
	// Logger reports records of the runs topic that do not decode.
	// Optional.
	Logger watermill.LoggerAdapter
	// Now is the clock. Optional. Default: time.Now.
	Now func() time.Time
}

// RunLog keeps the reprocess runs of every instance of a service in a
// Kafka topic, {service}.dlq.runs, that each instance reads from its start:
// the runs in progress with their progress and holder, the last finished
// run of each topic, and requests to stop a run. With it a Reprocessor
// starts a run only when no run of its topic holds the topic anywhere, so
// two replicas never redrive the same records at once; what each instance
// shows is the same and survives restarts.
//
// A run holds its topic with a lease: it writes a claim, and the claim wins
// when, in the topic's order, no other run's unexpired lease comes before
// it. Every instance applies the same records in the same order, so all
// agree on the winner. The holder renews the lease with its progress and
// ends it with its final progress. A run whose instance dies is abandoned
// once its lease expires; expiry compares the holder's clock (its last
// renewal) with the claimant's, so clocks must agree to well within the
// lease.
type RunLog struct {
	cfg RunLogConfig

	mu      sync.Mutex
	topics  map[string]*topicRuns
	beaten  map[string]runLease // run ID → the run whose lease beat its claim
	ended   map[string]bool     // runs finished or taken over
	local   map[string]localRun // runs of this instance, by run ID
	next    int64               // offset after the last record applied
	moved   chan struct{}
	started bool

	client   sarama.Client
	consumer sarama.Consumer
	pc       sarama.PartitionConsumer
	done     chan struct{}
}

// topicRuns is what the runs topic says of one original topic.
type topicRuns struct {
	holder *runLease
	last   *Progress
}

// runLease is the lease of a run, as of its last record.
type runLease struct {
	run, holder, instance string
	at, expires           time.Time
	progress              Progress
}

// localRun is the callbacks of a run of this instance.
type localRun struct {
	// stop stops the run, asked from an instance; lost ends it, its
	// lease taken over.
	stop func()
	lost func(reason string)
}

// Kinds of the records of the runs topic.
const (
	runClaim  = "claim"
	runRenew  = "renew"
	runFinish = "finish"
	runStop   = "stop"
)

// runKey is the key of a record of the runs topic, JSON.
type runKey struct {
	Topic string `json:"topic"`
	Run   string `json:"run"`
	// Stop marks a request to stop the run, kept apart from its lease.
	Stop bool `json:"stop,omitempty"`
}

// runValue is the value of a record of the runs topic, JSON.
type runValue struct {
	Kind     string    `json:"kind"`
	Holder   string    `json:"holder"`
	Instance string    `json:"instance,omitempty"`
	At       time.Time `json:"at"`
	Expires  time.Time `json:"expires,omitzero"`
	Progress *Progress `json:"progress,omitempty"`
	// By names who asked for a stop.
	By string `json:"by,omitempty"`
}

// RunHeldError is the error of a start refused because a run of the topic
// holds it, on this instance or another. It wraps ErrAlreadyRunning.
type RunHeldError struct {
	Topic  string
	RunID  string
	Holder string
	Since  time.Time
}

func (e *RunHeldError) Error() string {
	return fmt.Sprintf("dlq: reprocessing of %s is already running: run %s on %s since %s",
		e.Topic, e.RunID, e.Holder, e.Since.UTC().Format(time.RFC3339))
}

// Unwrap returns ErrAlreadyRunning.
func (e *RunHeldError) Unwrap() error { return ErrAlreadyRunning }

// NewRunLog returns a RunLog, or an error naming a missing field.
func NewRunLog(cfg RunLogConfig) (*RunLog, error) {
	var errs []error
	if cfg.Sender == nil {
		errs = append(errs, errors.New("dlq: RunLogConfig.Sender is required"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("dlq: RunLogConfig.Topic is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Holder == "" && cfg.Instance != "" {
		cfg.Holder = cfg.Instance
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RunLog{
		cfg: cfg, topics: map[string]*topicRuns{}, beaten: map[string]runLease{}, ended: map[string]bool{},
		local: map[string]localRun{}, moved: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// Topic returns the runs topic.
func (l *RunLog) Topic() string { return l.cfg.Topic }

// Holder returns the name of this instance in its runs.
func (l *RunLog) Holder() string { return l.cfg.Holder }

// Start starts reading the runs topic from its start, with client. The
// topic must exist. Give it a client of its own: its fetches wait for new
// records and would hold the other requests of a shared one. Close does not
// close it.
func (l *RunLog) Start(client sarama.Client) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return errors.New("dlq: RunLog started twice")
	}
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("dlq: runs reader: %w", err)
	}
	pc, err := c.ConsumePartition(l.cfg.Topic, 0, sarama.OffsetOldest)
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("dlq: reading %s: %w", l.cfg.Topic, err)
	}
	l.client, l.consumer, l.pc, l.started = client, c, pc, true
	go l.read()
	return nil
}

// Started reports whether Start succeeded.
func (l *RunLog) Started() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started
}

// Close stops the reader. It does not end the runs of this instance: the
// Reprocessor does, before.
func (l *RunLog) Close() error {
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if !started {
		return nil
	}
	l.pc.AsyncClose()
	<-l.done
	return l.consumer.Close()
}

func (l *RunLog) read() {
	defer close(l.done)
	for m := range l.pc.Messages() {
		l.apply(m)
	}
}

// apply applies m, a record of the runs topic, in the topic's order.
func (l *RunLog) apply(m *sarama.ConsumerMessage) {
	var k runKey
	var v runValue
	kerr := json.Unmarshal(m.Key, &k)
	verr := error(nil)
	if m.Value != nil {
		verr = json.Unmarshal(m.Value, &v)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next = m.Offset + 1
	close(l.moved)
	l.moved = make(chan struct{})
	if err := errors.Join(kerr, verr); err != nil || k.Topic == "" || k.Run == "" {
		l.cfg.Logger.Error("Ignoring a record of the DLQ runs topic", err, watermill.LogFields{"topic": l.cfg.Topic, "offset": m.Offset})
		return
	}
	if m.Value == nil {
		return // a tombstone of an old run
	}
	t := l.topics[k.Topic]
	if t == nil {
		t = &topicRuns{}
		l.topics[k.Topic] = t
	}
	cur := t.holder
	switch {
	case k.Stop || v.Kind == runStop:
		if cur != nil && cur.run == k.Run {
			if lr, ok := l.local[k.Run]; ok {
				go lr.stop()
			}
		}
	case v.Kind == runClaim:
		if l.ended[k.Run] {
			return
		}
		takeover := v.Instance != "" && cur != nil && cur.instance == v.Instance
		if cur != nil && cur.run != k.Run && cur.expires.After(v.At) && !takeover {
			l.beaten[k.Run] = *cur
			return
		}
		if cur != nil && cur.run != k.Run {
			l.abandon(t, cur, v.At)
		}
		t.holder = l.lease(k, v, cur)
	case v.Kind == runRenew:
		if l.ended[k.Run] || (cur != nil && cur.run != k.Run) {
			return
		}
		t.holder = l.lease(k, v, cur)
	case v.Kind == runFinish:
		l.ended[k.Run] = true
		if v.Progress != nil && (t.last == nil || !v.Progress.FinishedAt.Before(t.last.FinishedAt)) {
			p := *v.Progress
			t.last = &p
		}
		if cur != nil && cur.run == k.Run {
			t.holder = nil
		}
	default:
		l.cfg.Logger.Info("Ignoring a record of an unknown kind in the DLQ runs topic", watermill.LogFields{"topic": l.cfg.Topic, "offset": m.Offset, "kind": v.Kind})
	}
}

// lease is the lease of k's run after v, which renews cur when cur is
// that run's; l.mu is held.
func (l *RunLog) lease(k runKey, v runValue, cur *runLease) *runLease {
	ls := &runLease{run: k.Run, holder: v.Holder, instance: v.Instance, at: v.At, expires: v.Expires}
	if cur != nil && cur.run == k.Run {
		ls.at = cur.at
	}
	if v.Progress != nil {
		ls.progress = *v.Progress
	}
	return ls
}

// abandon ends cur, a lease that expired before another run claimed its
// topic at at, or that a run of the same instance took over; its instance,
// if it still runs, stops it. l.mu is held.
func (l *RunLog) abandon(t *topicRuns, cur *runLease, at time.Time) {
	l.ended[cur.run] = true
	p := cur.progress
	p.State, p.RunID, p.Holder = StateAbandoned, cur.run, cur.holder
	p.FinishedAt = cur.expires
	if at.Before(p.FinishedAt) {
		p.FinishedAt = at
	}
	t.last = &p
	if lr, ok := l.local[cur.run]; ok {
		go lr.lost("its lease expired and another run took the topic")
	}
}

// write writes a record of the runs topic and returns its offset.
func (l *RunLog) write(ctx context.Context, k runKey, v runValue) (int64, error) {
	key, err := json.Marshal(k)
	if err != nil {
		return 0, err
	}
	value, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rec := &sarama.ProducerMessage{
		Topic: l.cfg.Topic, Partition: 0, Key: sarama.ByteEncoder(key), Value: sarama.ByteEncoder(value),
		Headers: []sarama.RecordHeader{{Key: []byte("x-dlq-run-kind"), Value: []byte(v.Kind)}},
	}
	if err := l.cfg.Sender.SendRecord(ctx, rec); err != nil {
		return 0, fmt.Errorf("dlq: writing to %s: %w", l.cfg.Topic, err)
	}
	return rec.Offset, nil
}

// waitRead waits until the reader applied the record at off.
func (l *RunLog) waitRead(ctx context.Context, off int64) error {
	for {
		l.mu.Lock()
		next, moved := l.next, l.moved
		l.mu.Unlock()
		if next > off {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("dlq: reading %s: %w", l.cfg.Topic, ctx.Err())
		case <-l.done:
			return errors.New("dlq: the reader of the runs topic stopped")
		}
	}
}

// Sync waits until the reader applied every record written before the
// call.
func (l *RunLog) Sync(ctx context.Context) error {
	end, err := l.client.GetOffset(l.cfg.Topic, 0, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("dlq: end of %s: %w", l.cfg.Topic, err)
	}
	if end <= 0 {
		return nil
	}
	return l.waitRead(ctx, end-1)
}

// acquire claims topic for run, a run of this instance, and returns nil
// once its claim won, or a *RunHeldError naming the run that holds the
// topic. stop is called, on a goroutine of its own, when an instance asks
// the run to stop, and lost when its lease was taken over.
func (l *RunLog) acquire(ctx context.Context, topic, run string, p Progress, stop func(), lost func(reason string)) error {
	l.mu.Lock()
	l.local[run] = localRun{stop: stop, lost: lost}
	l.mu.Unlock()
	now := l.cfg.Now()
	p.RunID, p.Holder = run, l.cfg.Holder
	off, err := l.write(ctx, runKey{Topic: topic, Run: run}, runValue{
		Kind: runClaim, Holder: l.cfg.Holder, Instance: l.cfg.Instance, At: now, Expires: now.Add(l.cfg.Lease), Progress: &p,
	})
	if err == nil {
		err = l.waitRead(ctx, off)
	}
	l.mu.Lock()
	b, beaten := l.beaten[run]
	if err != nil || beaten {
		delete(l.beaten, run)
		delete(l.local, run)
		l.ended[run] = true
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if beaten {
		// The claim that lost is removed: once compaction dropped the
		// records of the run that won, it would look like one that won.
		if terr := l.tombstone(ctx, runKey{Topic: topic, Run: run}); terr != nil {
			l.cfg.Logger.Error("Could not remove a claim that lost from the DLQ runs topic", terr, watermill.LogFields{"topic": topic, "run": run})
		}
		return &RunHeldError{Topic: topic, RunID: b.run, Holder: b.holder, Since: b.at}
	}
	return nil
}

// tombstone removes the records of key k from the runs topic.
func (l *RunLog) tombstone(ctx context.Context, k runKey) error {
	key, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return l.cfg.Sender.SendRecord(ctx, &sarama.ProducerMessage{Topic: l.cfg.Topic, Partition: 0, Key: sarama.ByteEncoder(key)})
}

// renew renews the lease of run with its progress.
func (l *RunLog) renew(ctx context.Context, topic, run string, p Progress) error {
	now := l.cfg.Now()
	p.RunID, p.Holder = run, l.cfg.Holder
	_, err := l.write(ctx, runKey{Topic: topic, Run: run}, runValue{
		Kind: runRenew, Holder: l.cfg.Holder, Instance: l.cfg.Instance, At: now, Expires: now.Add(l.cfg.Lease), Progress: &p,
	})
	return err
}

// finish ends the lease of run with its final progress.
func (l *RunLog) finish(ctx context.Context, topic, run string, p Progress) error {
	l.mu.Lock()
	delete(l.local, run)
	l.mu.Unlock()
	p.RunID, p.Holder = run, l.cfg.Holder
	off, err := l.write(ctx, runKey{Topic: topic, Run: run}, runValue{
		Kind: runFinish, Holder: l.cfg.Holder, At: l.cfg.Now(), Progress: &p,
	})
	if err != nil {
		return err
	}
	return l.waitRead(ctx, off)
}

// requestStop asks the run holding topic ("" for every topic) to stop,
// wherever it runs, and returns how many runs it asked.
func (l *RunLog) requestStop(ctx context.Context, topic string) (int, error) {
	if err := l.Sync(ctx); err != nil {
		return 0, err
	}
	var leases []runKey
	l.mu.Lock()
	now := l.cfg.Now()
	for name, t := range l.topics {
		if (topic == "" || topic == name) && t.holder != nil && t.holder.expires.After(now) {
			leases = append(leases, runKey{Topic: name, Run: t.holder.run, Stop: true})
		}
	}
	l.mu.Unlock()
	for _, k := range leases {
		if _, err := l.write(ctx, k, runValue{Kind: runStop, Holder: l.cfg.Holder, At: now, By: l.cfg.Holder}); err != nil {
			return 0, err
		}
	}
	return len(leases), nil
}

// holding returns the run holding topic, per the runs topic, if any lease
// of it is unexpired.
func (l *RunLog) holding(topic string) (Progress, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.topics[topic]
	if t == nil || t.holder == nil || !t.holder.expires.After(l.cfg.Now()) {
		return Progress{}, false
	}
	return t.holder.snapshot(), true
}

func (ls *runLease) snapshot() Progress {
	p := ls.progress
	p.RunID, p.Holder, p.State = ls.run, ls.holder, StateRunning
	if p.StartedAt.IsZero() {
		p.StartedAt = ls.at
	}
	return p
}

// status returns the runs that hold their topic, and the last finished (or
// abandoned) run of each topic.
func (l *RunLog) status() ([]Progress, map[string]Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	running := []Progress{}
	last := map[string]Progress{}
	for name, t := range l.topics {
		if t.last != nil {
			last[name] = *t.last
		}
		if t.holder == nil {
			continue
		}
		if t.holder.expires.After(now) {
			running = append(running, t.holder.snapshot())
			continue
		}
		// Not renewed: its instance is gone, or cut off from Kafka.
		p := t.holder.snapshot()
		p.State = StateAbandoned
		p.FinishedAt = t.holder.expires
		if old, ok := last[name]; !ok || !old.FinishedAt.After(p.FinishedAt) {
			last[name] = p
		}
	}
	slices.SortFunc(running, func(a, b Progress) int { return a.StartedAt.Compare(b.StartedAt) })
	return running, last
}
