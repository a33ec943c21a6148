package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents/wire"
)

// ErrRecordNotFound is returned by Detail and ReprocessRecord for a
// partition or offset that holds no DLQ record (out of range, deleted by
// retention, or a partition the DLQ does not have).
var ErrRecordNotFound = errors.New("dlq: no such DLQ record")

// MaxPayload bounds Detail.Payload, in bytes: larger payloads are cut and
// Detail.Truncated is set.
const MaxPayload = 1 << 20

// Detail is one DLQ record in full, as Reprocessor.Detail returns it.
type Detail struct {
	BrowsedRecord
	// OriginalTopic is the topic the record failed on (x-original-topic).
	OriginalTopic string `json:"originalTopic"`
	// CorrelationID is x-correlation-id; TraceID the trace ID of its
	// traceparent header, if any.
	CorrelationID string `json:"correlationId,omitempty"`
	TraceID       string `json:"traceId,omitempty"`
	// Payload is the record's value, at most MaxPayload bytes. In JSON it is
	// base64, so any bytes survive.
	Payload []byte `json:"payload"`
}

// Query selects DLQ records for Search. Empty fields match everything.
type Query struct {
	// Topic, Reason and HandlerID match the x-original-topic, x-dlq-reason
	// and x-handler-id headers exactly.
	Topic     string `json:"topic"`
	Reason    string `json:"reason"`
	HandlerID string `json:"handlerId"`
	// Pending keeps only the records the next run of Topic would read: those
	// after the position its consumer group committed. It needs Topic.
	Pending bool `json:"pending"`
	// Limit (1..MaxBrowseLimit) and Offset (>= 0) page through the matches.
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

// Search lists the DLQ records that match q, in partition and offset
// order, like Browse. Page.Topic is q.Topic.
func (r *Reprocessor) Search(ctx context.Context, q Query) (Page, error) {
	if q.Limit < 1 || q.Limit > MaxBrowseLimit || q.Offset < 0 || (q.Pending && q.Topic == "") {
		return Page{}, fmt.Errorf("%w: limit %d (want 1..%d), offset %d (want >= 0), pending %t with topic %q (pending needs a topic)",
			ErrInvalidBrowse, q.Limit, MaxBrowseLimit, q.Offset, q.Pending, q.Topic)
	}
	dlqTopic := r.cfg.Queue.Topic()
	parts, err := r.cfg.Client.Partitions(dlqTopic)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: partitions of %s: %w", dlqTopic, err)
	}
	var committed map[int32]int64
	if q.Pending {
		if committed, err = (groupCommits{client: r.cfg.Client, group: r.GroupID(q.Topic)}).fetch(dlqTopic, parts); err != nil {
			return Page{}, err
		}
	}
	consumer, err := sarama.NewConsumerFromClient(r.cfg.Client)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()

	page := Page{Topic: q.Topic, Offset: q.Offset, Limit: q.Limit, Records: []BrowsedRecord{}}
	for _, p := range parts {
		from, end, err := bounds(r.cfg.Client, dlqTopic, p)
		if err != nil {
			return Page{}, err
		}
		if q.Pending && committed[p] > from {
			from = committed[p]
		}
		err = scanPartition(ctx, consumer, dlqTopic, p, from, end, func(m *sarama.ConsumerMessage) error {
			hdr := wire.HeaderMap(m.Headers)
			if !q.matches(hdr) {
				return nil
			}
			page.Total++
			if page.Total <= q.Offset || len(page.Records) >= q.Limit {
				return nil
			}
			page.Records = append(page.Records, browsed(m, hdr))
			return nil
		})
		if err != nil {
			return Page{}, err
		}
	}
	return page, nil
}

func (q Query) matches(hdr map[string]string) bool {
	return (q.Topic == "" || hdr[wire.HeaderOriginalTopic] == q.Topic) &&
		(q.Reason == "" || hdr[wire.HeaderDLQReason] == q.Reason) &&
		(q.HandlerID == "" || hdr[wire.HeaderHandlerID] == q.HandlerID)
}

// Detail reads the DLQ record at partition and offset. It returns an error
// wrapping ErrRecordNotFound when there is none.
func (r *Reprocessor) Detail(ctx context.Context, partition int32, offset int64) (Detail, error) {
	m, err := r.read(ctx, partition, offset)
	if err != nil {
		return Detail{}, err
	}
	hdr := wire.HeaderMap(m.Headers)
	rec := Detail{
		BrowsedRecord: browsed(m, hdr), OriginalTopic: hdr[wire.HeaderOriginalTopic],
		CorrelationID: hdr[wire.HeaderCorrelationID], TraceID: traceID(hdr[wire.HeaderTraceparent]),
	}
	rec.Preview = ""
	rec.Payload, rec.Truncated = m.Value, false
	if len(rec.Payload) > MaxPayload {
		rec.Payload, rec.Truncated = rec.Payload[:MaxPayload], true
	}
	if rec.Payload == nil {
		rec.Payload = []byte{}
	}
	return rec, nil
}

// traceID returns the trace ID of a W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "" when it is not one.
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	id := tp[3:35]
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return id
}

// read returns the DLQ record at partition and offset.
func (r *Reprocessor) read(ctx context.Context, partition int32, offset int64) (*sarama.ConsumerMessage, error) {
	dlqTopic := r.cfg.Queue.Topic()
	parts, err := r.cfg.Client.Partitions(dlqTopic)
	if err != nil {
		return nil, fmt.Errorf("dlq: partitions of %s: %w", dlqTopic, err)
	}
	known := false
	for _, p := range parts {
		known = known || p == partition
	}
	if !known {
		return nil, fmt.Errorf("%w: %s has no partition %d", ErrRecordNotFound, dlqTopic, partition)
	}
	oldest, end, err := bounds(r.cfg.Client, dlqTopic, partition)
	if err != nil {
		return nil, err
	}
	if offset < oldest || offset >= end {
		return nil, fmt.Errorf("%w: offset %d of %s/%d is outside %d..%d", ErrRecordNotFound, offset, dlqTopic, partition, oldest, end-1)
	}
	consumer, err := sarama.NewConsumerFromClient(r.cfg.Client)
	if err != nil {
		return nil, fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()
	var found *sarama.ConsumerMessage
	err = scanPartition(ctx, consumer, dlqTopic, partition, offset, offset+1, func(m *sarama.ConsumerMessage) error {
		if m.Offset == offset {
			found = m
		}
		return errStopScan
	})
	if err != nil {
		return nil, err
	}
	if found == nil { // a compacted or transaction-control offset
		return nil, fmt.Errorf("%w: offset %d of %s/%d holds no record", ErrRecordNotFound, offset, dlqTopic, partition)
	}
	return found, nil
}

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
	m, err := r.read(ctx, partition, offset)
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
