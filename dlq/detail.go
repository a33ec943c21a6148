package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/wire"
)

// ErrRecordNotFound is returned by Detail and ReprocessRecord for a
// partition or offset that holds no DLQ record (out of range, deleted by
// retention, or a partition the DLQ does not have).
var ErrRecordNotFound = errors.New("dlq: no such DLQ record")

// MaxPayload bounds Detail.Payload, in bytes: larger payloads are cut and
// Detail.Truncated is set.
const MaxPayload = 1 << 20

// Detail is one DLQ record in full, as Browser.Detail returns it.
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

// Detail reads the DLQ record at partition and offset. It returns an error
// wrapping ErrRecordNotFound when there is none.
func (b *Browser) Detail(ctx context.Context, partition int32, offset int64) (Detail, error) {
	m, err := b.read(ctx, partition, offset)
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

// read returns the DLQ record at partition and offset, or an error wrapping
// ErrRecordNotFound when there is none.
func (b *Browser) read(ctx context.Context, partition int32, offset int64) (*sarama.ConsumerMessage, error) {
	dlqTopic := b.cfg.Topic
	parts, err := b.cfg.Client.Partitions(dlqTopic)
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
	oldest, end, err := bounds(b.cfg.Client, dlqTopic, partition)
	if err != nil {
		return nil, err
	}
	if offset < oldest || offset >= end {
		return nil, fmt.Errorf("%w: offset %d of %s/%d is outside %d..%d", ErrRecordNotFound, offset, dlqTopic, partition, oldest, end-1)
	}
	consumer, err := sarama.NewConsumerFromClient(b.cfg.Client)
	if err != nil {
		return nil, fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()
	var found *sarama.ConsumerMessage
	err = scanPartition(ctx, b.cfg.Client, consumer, dlqTopic, partition, offset, offset+1, func(m *sarama.ConsumerMessage) error {
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
