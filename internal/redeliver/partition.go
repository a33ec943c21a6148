package redeliver

import (
	"context"

	"github.com/torix/kafkaevents/internal/inorder"
)

// Partition tracks the records of one partition that its reader hands to
// their handlers. The reader calls Admit for each record in offset order,
// then Run with the record's delivery, and Wait before it stops reading.
// Its zero value is not usable; see [NewPartition].
type Partition struct {
	marks  *inorder.Marks
	slots  *inorder.Slots
	failed func(error)
}

// NewPartition returns a Partition that calls mark with the offset after the
// last record done in a row (the offset to commit) each time it moves; mark
// is called in offset order and must not call back into the Partition.
//
// concurrency(handlerID) is how many records of that handler may be
// delivered at once; nil means 1 for every handler, every record in line.
// failed receives the error of a delivery that ran beside the reader (see
// Run); nil drops it.
func NewPartition(mark func(next int64), concurrency func(handlerID string) int, failed func(error)) *Partition {
	return &Partition{marks: inorder.NewMarks(mark), slots: inorder.NewSlots(concurrency), failed: failed}
}

// Admit waits until fewer than inorder.Window records are admitted and not
// yet covered by a mark, then registers the record at offset, which must be
// above every offset admitted before. done says the record is done; calling
// it more than once has no further effect. Admit returns ctx's error, and
// registers nothing, when ctx ends first: one record that never finishes
// holds its partition's reading after inorder.Window more.
func (p *Partition) Admit(ctx context.Context, offset int64) (done func(), err error) {
	if err := p.marks.Room(ctx, inorder.Window); err != nil {
		return nil, err
	}
	return p.marks.Add(offset), nil
}

// AdmitMark is Admit, returning the record's mark: its Done says the record
// is done, its Settling counts it done in Committable while its hand-off is
// committed in a transaction.
func (p *Partition) AdmitMark(ctx context.Context, offset int64) (*inorder.Mark, error) {
	if err := p.marks.Room(ctx, inorder.Window); err != nil {
		return nil, err
	}
	return p.marks.AddMark(offset), nil
}

// Committable is [inorder.Marks.Committable] of the partition's records.
func (p *Partition) Committable() (next, end int64, unsettled []int64) {
	return p.marks.Committable()
}

// Run runs deliver, the delivery of one record of handlerID. For a handler
// that takes more than one record at a time, it waits for one of the
// handler's slots, starts deliver beside the reader and returns nil at once;
// deliver's error then goes to failed. Otherwise it runs deliver in line and
// returns its error. It returns ctx's error, without running deliver, when
// ctx ends before deliver could start.
func (p *Partition) Run(ctx context.Context, handlerID string, deliver func() error) error {
	if release, ok := p.slots.Acquire(ctx, handlerID); ok {
		go func() {
			defer release()
			if err := deliver(); err != nil && p.failed != nil {
				p.failed(err)
			}
		}()
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return deliver()
}

// Wait waits until every delivery that Run started beside the reader has
// returned. A reader calls it before it stops, so that the marks of those
// records precede its last commit.
func (p *Partition) Wait() { p.slots.Wait() }
