package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/internal/redeliver"
	"github.com/torix/kafkaevents/wire"
)

// routed is a DLQ record on its way back to its handler.
type routed struct {
	m         *sarama.ConsumerMessage
	hdr       map[string]string
	handlerID string
	count     int // x-reprocess-count before this delivery
}

// route decides what becomes of one DLQ record: deliver is false for a
// record that is done without a delivery (another topic's, parked, or naming
// an unknown handler). An error stops the run (StopOnError).
func (r *Reprocessor) route(rn *run, opts ReprocessOptions, m *sarama.ConsumerMessage) (rec routed, deliver bool, err error) {
	hdr := wire.HeaderMap(m.Headers)
	if hdr[wire.HeaderOriginalTopic] != opts.Topic {
		rn.skipped.Add(1)
		return routed{}, false, nil
	}
	count := reprocessCount(hdr)
	if count >= r.cfg.MaxReprocess {
		rn.parked.Add(1)
		return routed{}, false, nil
	}
	handlerID := hdr[wire.HeaderHandlerID]
	if !r.cfg.Dispatcher.Known(handlerID) {
		rn.failed.Add(1)
		r.logger.Error("DLQ record names an unknown handler; left in the DLQ", dispatch.ErrUnknownHandler, watermill.LogFields{
			"handler_id": handlerID, "partition": m.Partition, "offset": m.Offset,
		})
		if opts.StopOnError {
			return routed{}, false, fmt.Errorf("%w: unknown handler %q at %d/%d", errStoppedOnError, handlerID, m.Partition, m.Offset)
		}
		return routed{}, false, nil
	}
	return routed{m: m, hdr: hdr, handlerID: handlerID, count: count}, true, nil
}

// reprocessOne handles one DLQ record. A nil return means the record is done
// (its offset may be committed).
func (r *Reprocessor) reprocessOne(ctx context.Context, rn *run, opts ReprocessOptions, m *sarama.ConsumerMessage) error {
	rec, deliver, err := r.route(rn, opts, m)
	if err != nil || !deliver {
		return err
	}
	return r.deliver(ctx, rn, opts, rec)
}

// deliver hands a routed record to its handler and waits for the outcome. A
// nil return means the record is done.
func (r *Reprocessor) deliver(ctx context.Context, rn *run, opts ReprocessOptions, rec routed) error {
	m, handlerID := rec.m, rec.handlerID
	d := wire.Delivery{
		HandlerID: handlerID, Topic: opts.Topic, Key: m.Key,
		ReprocessCount: rec.count + 1, Source: wire.SourceReprocess,
	}
	d.Partition, d.Offset, d.HasOffset = originalOffset(message.Metadata(rec.hdr))
	var outcome atomic.Pointer[wire.Outcome]
	d.Report = func(o wire.Outcome) { outcome.Store(&o) }

	parent := ctx
	if opts.StopOnError {
		parent = wire.WithoutHandoff(ctx)
	}
	msg := redeliver.Record{
		UUID: rec.hdr[wire.HeaderWatermillUUID], Payload: m.Value, Metadata: reprocessMetadata(rec.hdr, rec.count+1), Delivery: d,
	}.Message(parent)

	err := r.cfg.Dispatcher.Deliver(ctx, handlerID, msg)
	switch {
	case err == nil:
		if o := outcome.Load(); o != nil && o.Kind != wire.OutcomeHandled {
			rn.failed.Add(1)
		} else {
			rn.reprocessed.Add(1)
		}
		return nil
	case errors.Is(err, dispatch.ErrNacked) && opts.StopOnError:
		rn.failed.Add(1)
		return fmt.Errorf("%w: %d/%d", errStoppedOnError, m.Partition, m.Offset)
	default:
		return fmt.Errorf("dlq: dispatch of %d/%d to %s: %w", m.Partition, m.Offset, handlerID, err)
	}
}

// reprocessMetadata is the metadata a DLQ record with headers hdr is
// reprocessed with: the headers the stack did not write, the correlation ID
// and the trace context, and x-reprocess-count set to count.
func reprocessMetadata(hdr map[string]string, count int) message.Metadata {
	md := message.Metadata{}
	for k, v := range hdr {
		if !isOwnHeader(k) || k == wire.HeaderCorrelationID {
			if k != wire.HeaderWatermillUUID && k != wire.HeaderFirstFailedAt {
				md.Set(k, v)
			}
		}
	}
	md.Set(wire.HeaderReprocessCount, strconv.Itoa(count))
	return md
}

func reprocessCount(hdr map[string]string) int {
	n, err := strconv.Atoi(hdr[wire.HeaderReprocessCount])
	if err != nil || n < 0 {
		return 0
	}
	return n
}
