package dlq

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/torix/kafkaevents/internal/inorder"
	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/wire"
)

// RunPosition is the position of a reprocess run in one DLQ partition, as a
// transaction commits it for the run's group: the next offset to read, and
// the commit metadata that names the records past it already done.
type RunPosition struct {
	Partition int32
	Offset    int64
	Metadata  string
}

// TransactionalCommits commits the positions of reprocess runs in the
// transactions that write the hand-offs (exactly-once hand-offs): a record
// reprocessed that fails again is handed to a retry lane or to the DLQ, and
// its run's position moves past it, in one transaction, so that a run
// resumed after a crash never hands it off twice. The kafkaevents Stack
// implements it over its hand-off producer.
type TransactionalCommits interface {
	// Track adds positions, the positions of a run of group in topic, to
	// every transaction until remove is called. positions is called from
	// the committer's goroutine and must not block.
	Track(group, topic string, positions func() []RunPosition) (remove func())
	// Flush commits the positions now.
	Flush(ctx context.Context) error
	// Forget lets the next transaction commit offsets of group lower than
	// those it committed before (a position replaced outside it).
	Forget(group string)
}

// runPositions are the partitions a run reads, for its transactional
// commits.
type runPositions struct {
	mu    sync.Mutex
	parts map[int32]*redeliver.Partition
}

func (rp *runPositions) add(partition int32, p *redeliver.Partition) {
	rp.mu.Lock()
	rp.parts[partition] = p
	rp.mu.Unlock()
}

// positions returns the committable position of each partition read, with
// the records whose hand-off is being committed counted as done.
func (rp *runPositions) positions() []RunPosition {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := make([]RunPosition, 0, len(rp.parts))
	for partition, p := range rp.parts {
		next, end, unsettled := p.Committable()
		if next < 0 {
			continue
		}
		md := offsets.EncodeMetadata(next, end, unsettled)
		if len(md) > offsets.DefaultMetadataBudget {
			md = "" // the records past next are delivered again after a crash
		}
		out = append(out, RunPosition{Partition: partition, Offset: next, Metadata: md})
	}
	return out
}

// recordHolds counts what keeps one record of a run from being done: its
// delivery, and each hand-off of it whose transaction has not committed.
type recordHolds struct {
	mark *inorder.Mark
	refs atomic.Int32
	// done runs once the record is done.
	done func()
}

func newRecordHolds(mark *inorder.Mark, done func()) *recordHolds {
	h := &recordHolds{mark: mark, done: done}
	h.refs.Store(1)
	return h
}

// release drops one reference; the last one makes the record done.
func (h *recordHolds) release() {
	if h.refs.Add(-1) == 0 {
		h.mark.Done()
		h.done()
	}
}

// hold holds the record for one hand-off (wire.OffsetHolder).
func (h *recordHolds) hold() wire.OffsetHold {
	h.refs.Add(1)
	return &runHold{h: h}
}

// runHold is the hold of a reprocessed record's hand-off: released once the
// transaction that carries it committed. It is never lost: a run that stops
// meanwhile waits for its deliveries.
type runHold struct {
	h    *recordHolds
	once sync.Once
}

func (r *runHold) Release()              { r.once.Do(r.h.release) }
func (r *runHold) Lost() <-chan struct{} { return nil }
func (r *runHold) Settling(on bool)      { r.h.mark.Settling(on) }

// withHold returns ctx carrying the holds of a record, for its hand-offs.
func withHold(ctx context.Context, h *recordHolds) context.Context {
	return offsets.WithHolder(ctx, h.hold)
}
