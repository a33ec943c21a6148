package dlq

import (
	"context"
	"sync"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/internal/txn"
)

// span is the part of one DLQ partition that a run reads.
type span struct {
	partition int32
	from, end int64
	// committed is the group's committed offset (-1 for none), and
	// outOfRange reports that it lay outside the log, so from is the log
	// start instead.
	committed  int64
	outOfRange bool
	// records is how many records of the span a consumer delivers, as far
	// as the run's start could tell (see countRecords).
	records int64
}

// len is how many offsets the span covers.
func (s span) len() int64 { return max(s.end-s.from, 0) }

// spanCountMax is the longest span whose records a run counts at its start;
// a longer one counts as its offsets.
const spanCountMax = 10_000

// countRecords returns how many records of s a consumer delivers: the count
// for a span of at most spanCountMax offsets (the transaction markers of
// exactly-once hand-offs, and aborted records, are not records), else its
// length, which the run corrects when it reaches the span's end.
func countRecords(client sarama.Client, topic string, s span) int64 {
	if s.len() == 0 || s.len() > spanCountMax {
		return s.len()
	}
	n, open, err := txn.CountDeliverable(client, topic, s.partition, s.from, s.end, s.len())
	if err != nil || open {
		return s.len()
	}
	return n
}

// partitionSpans returns, for each partition, where a run starts (see
// startOffset) and where it ends (the end offset now).
func partitionSpans(client sarama.Client, topic string, parts []int32, committed map[int32]int64) ([]span, error) {
	spans := make([]span, 0, len(parts))
	for _, p := range parts {
		oldest, end, err := bounds(client, topic, p)
		if err != nil {
			return nil, err
		}
		from, outOfRange := startOffset(committed[p], oldest, end)
		spans = append(spans, span{partition: p, from: from, end: end, committed: committed[p], outOfRange: outOfRange})
	}
	return spans, nil
}

// startOffset returns where the next run of a partition starts: the
// committed offset when it lies in the log (oldest to end, both included),
// else oldest, the first record still in the log. With nothing committed
// (-1) it returns oldest and outOfRange false. A committed offset below
// oldest means retention deleted records before a run read them; one past
// end means the partition lost records the group had read (the DLQ was
// deleted and recreated, or truncated). Both return outOfRange true: like a
// consumer's auto.offset.reset=earliest, the run then reads every record
// still there rather than skip the ones below the committed offset.
func startOffset(committed, oldest, end int64) (from int64, outOfRange bool) {
	if committed < 0 {
		return oldest, false
	}
	if committed < oldest || committed > end {
		return oldest, true
	}
	return committed, false
}

// eachPartition calls read for every span, at most parallel at a time, and
// returns their errors in span order. The first error cancels ctx, with
// itself as the cause, which stops the others; a span whose turn comes
// after ctx ended is not read.
func eachPartition(ctx context.Context, cancel context.CancelCauseFunc, spans []span, parallel int, read func(context.Context, span) error) []error {
	limit := make(chan struct{}, parallel)
	errs := make([]error, len(spans))
	var wg sync.WaitGroup
	for i, s := range spans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case limit <- struct{}{}:
				defer func() { <-limit }()
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return
			}
			if errs[i] = read(ctx, s); errs[i] != nil {
				cancel(errs[i])
			}
		}()
	}
	wg.Wait()
	return errs
}

// partitionReader reads the spans of one run and hands each record of the
// run's topic back to its handler.
type partitionReader struct {
	r        *Reprocessor
	rn       *run
	opts     ReprocessOptions
	consumer sarama.Consumer
	topic    string // the DLQ topic
	commits  *batchCommits
	// positions are the partitions read, when the run's positions are
	// committed in transactions; done the records past each committed
	// position that a run did already (the commit metadata).
	positions *runPositions
	done      map[int32]*offsets.Window
	// concurrency is ReprocessorConfig.Concurrency, or nil (one record at
	// a time) with StopOnError.
	concurrency func(handlerID string) int
	// fail stops the run with the error of a delivery beside the reader.
	fail context.CancelCauseFunc
}

// read reads s. Records of a handler that takes several at once are
// delivered beside each other, up to its limit; the partition's committed
// offset only moves past records that are all done. read returns once those
// deliveries have returned too.
func (pr *partitionReader) read(ctx context.Context, s span) error {
	part := redeliver.NewPartition(func(next int64) { pr.commits.mark(s.partition, next) }, pr.concurrency, pr.fail)
	defer part.Wait()
	if pr.positions != nil {
		pr.positions.add(s.partition, part)
	}
	done := pr.done[s.partition]
	seen := int64(0)
	err := scanPartition(ctx, pr.r.cfg.Client, pr.consumer, pr.topic, s.partition, s.from, s.end, func(m *sarama.ConsumerMessage) error {
		seen++
		mark, err := part.AdmitMark(ctx, m.Offset)
		if err != nil {
			return err
		}
		var finish func() error
		var holds *recordHolds
		if pr.positions != nil {
			// Done once delivered and once every hand-off of it committed,
			// in the transaction that commits the position past it.
			holds = newRecordHolds(mark, func() { pr.rn.remaining.Add(-1) })
			finish = func() error { holds.release(); return nil }
		} else {
			finish = func() error {
				mark.Done()
				pr.rn.remaining.Add(-1)
				return pr.commits.recordDone()
			}
		}
		if done.Settled(m.Offset) {
			// Done by a run that stopped before its position passed it.
			return finish()
		}
		rec, deliver, err := pr.r.route(pr.rn, pr.opts, m)
		if err != nil {
			return err
		}
		if !deliver {
			return finish()
		}
		dctx := ctx
		if holds != nil {
			dctx = withHold(ctx, holds)
		}
		return part.Run(ctx, rec.handlerID, func() error {
			if err := pr.r.deliver(dctx, pr.rn, pr.opts, rec); err != nil {
				return err
			}
			return finish()
		})
	})
	if err == nil {
		// The offsets of the span no consumer delivers that the run's
		// start counted: transaction markers, aborted or compacted records.
		pr.rn.remaining.Add(seen - s.records)
	}
	return err
}
