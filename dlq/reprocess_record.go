package dlq

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/wire"
)

// Outcomes of ReprocessRecord.
const (
	OutcomeReprocessed = "reprocessed"
	OutcomeFailed      = "failed"
	OutcomeParked      = "parked"
)

// RecordResult is the result of ReprocessRecord.
type RecordResult struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Topic     string `json:"topic"`
	HandlerID string `json:"handlerId"`
	// Outcome is OutcomeReprocessed when the handler completed the record,
	// OutcomeFailed when it failed again (the record then took the normal
	// retry and DLQ path) or names an unknown handler, OutcomeParked when
	// its x-reprocess-count reached the limit and it was not dispatched.
	Outcome    string    `json:"outcome"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// ReprocessRecord reprocesses the one DLQ record at partition and offset
// exactly as a run of its original topic would: it is handed to its handler
// in this service's consumer group through the Dispatcher, never
// republished, so other consumer groups of the original topic see nothing.
// A record that fails again goes through the normal retry and DLQ path.
// It commits no offset: a later run of the topic reads the record again
// if its group's position is still before it.
//
// Close cancels a call in progress.
//
// It returns an error wrapping ErrRecordNotFound, ErrClosed, or the error
// that kept the record from being handed over (ctx's error included).
func (r *Reprocessor) ReprocessRecord(ctx context.Context, partition int32, offset int64) (RecordResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rn := &run{cancel: cancel}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return RecordResult{}, ErrClosed
	}
	if r.singles == nil {
		r.singles = map[*run]struct{}{}
	}
	r.singles[rn] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.singles, rn)
		r.mu.Unlock()
		r.wg.Done()
	}()

	res := RecordResult{Partition: partition, Offset: offset, StartedAt: time.Now().UTC()}
	m, err := r.browser.read(ctx, partition, offset)
	if err != nil {
		return res, err
	}
	hdr := wire.HeaderMap(m.Headers)
	res.Topic, res.HandlerID = hdr[wire.HeaderOriginalTopic], hdr[wire.HeaderHandlerID]
	if res.Topic == "" {
		return res, fmt.Errorf("%w: %s/%d has no %s header", ErrRecordNotFound, r.cfg.Queue.Topic(), partition, wire.HeaderOriginalTopic)
	}
	err = r.reprocessOne(ctx, rn, ReprocessOptions{Topic: res.Topic}, m)
	res.FinishedAt = time.Now().UTC()
	if err != nil {
		return res, err
	}
	switch {
	case rn.parked.Load() > 0:
		res.Outcome = OutcomeParked
	case rn.failed.Load() > 0:
		res.Outcome = OutcomeFailed
	default:
		res.Outcome = OutcomeReprocessed
	}
	r.cfg.Queue.Metrics().add(rn.reprocessed.Load(), 0, rn.failed.Load(), rn.parked.Load())
	r.logger.Info("DLQ record reprocessed", watermill.LogFields{
		"topic": res.Topic, "handler_id": res.HandlerID, "partition": partition, "offset": offset, "outcome": res.Outcome,
	})
	return res, nil
}
