package kafkaevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/tracing"
)

// Message is one record to send, the Go form of the NestJS package's
// KafkaProducerService.send options.
type Message struct {
	// Topic is required.
	Topic string
	// Key is the record key. Optional; empty means no key (round-robin-ish
	// placement by sarama's hash partitioner).
	Key string
	// Value is the payload: a []byte or json.RawMessage is sent as is, a
	// string as its bytes, nil as an empty payload, and anything else as its
	// JSON encoding.
	Value any
	// Headers are added to the record. Optional.
	Headers map[string]string
	// Partition, when not nil, sends the record to that partition instead of
	// the one its key hashes to.
	Partition *int32
	// Timestamp is the record timestamp. Optional. Default: now.
	Timestamp time.Time
	// CorrelationID is stamped as x-correlation-id. Optional. Default: the
	// x-correlation-id in Headers, else the correlation ID of the message
	// being handled in ctx, else a generated one.
	CorrelationID string
}

// Result is where a record was written.
type Result struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
	CorrelationID string `json:"correlationId"`
}

// Producer sends records and reports their partition and offset. It is safe
// for concurrent use. Create it with NewProducer or get the Stack's with
// Stack.Producer.
type Producer struct {
	sync   sarama.SyncProducer
	tracer *tracing.Tracer
}

// ErrInvalidMessage is wrapped by the errors of messages that cannot be sent
// (no topic, a value that does not marshal).
var ErrInvalidMessage = errors.New("kafkaevents: invalid message")

// NewProducer returns a Producer on client. Closing the Producer does not
// close client. tracer may be nil (no spans, no trace headers).
func NewProducer(client sarama.Client, tracer *tracing.Tracer) (*Producer, error) {
	sp, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: producer: %w", err)
	}
	return &Producer{sync: sp, tracer: tracer}, nil
}

// Send sends one record and returns once the broker acknowledged it (with the
// configured required acks).
func (p *Producer) Send(ctx context.Context, m Message) (Result, error) {
	res, err := p.SendBatch(ctx, []Message{m})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// SendBatch sends the records together, pipelined rather than one round trip
// each, and returns once the broker acknowledged all of them, with the
// results in the order of ms. If some fail, it returns the results (zero for
// the failed ones) and an error joining each failure with its index.
func (p *Producer) SendBatch(ctx context.Context, ms []Message) ([]Result, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	recs := make([]*sarama.ProducerMessage, len(ms))
	ends := make([]func(int32, int64, error), len(ms))
	results := make([]Result, len(ms))
	for i, m := range ms {
		rec, id, err := toRecord(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		_, ends[i] = p.tracer.StartSend(ctx, rec)
		recs[i] = rec
		results[i] = Result{Topic: m.Topic, CorrelationID: id}
	}
	err := p.sync.SendMessages(recs)
	failed := map[*sarama.ProducerMessage]error{}
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			failed[pe.Msg] = pe.Err
		}
	} else if err != nil {
		for i := range recs {
			ends[i](0, 0, err)
		}
		return nil, fmt.Errorf("kafkaevents: send: %w", err)
	}
	var errs []error
	for i, rec := range recs {
		if ferr, ok := failed[rec]; ok {
			ends[i](0, 0, ferr)
			errs = append(errs, fmt.Errorf("message %d to %s: %w", i, rec.Topic, ferr))
			results[i] = Result{}
			continue
		}
		ends[i](rec.Partition, rec.Offset, nil)
		results[i].Partition, results[i].Offset = rec.Partition, rec.Offset
	}
	if len(errs) > 0 {
		return results, fmt.Errorf("kafkaevents: send: %w", errors.Join(errs...))
	}
	return results, nil
}

// SendRecord implements middleware.Sender: it stamps the correlation ID from
// ctx when rec has none, records a send span, injects the trace context and
// waits for the broker's acknowledgement.
func (p *Producer) SendRecord(ctx context.Context, rec *sarama.ProducerMessage) error {
	if !hasHeader(rec.Headers, correlation.Header) {
		if id := correlation.FromContext(ctx); id != "" {
			rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(correlation.Header), Value: []byte(id)})
		}
	}
	_, end := p.tracer.StartSend(ctx, rec)
	partition, offset, err := p.sync.SendMessage(rec)
	end(partition, offset, err)
	return err
}

// Close flushes and closes the producer. It does not close the client.
func (p *Producer) Close() error { return p.sync.Close() }

func hasHeader(hs []sarama.RecordHeader, key string) bool {
	for _, h := range hs {
		if string(h.Key) == key {
			return true
		}
	}
	return false
}

func toRecord(ctx context.Context, m Message) (*sarama.ProducerMessage, string, error) {
	if m.Topic == "" {
		return nil, "", fmt.Errorf("%w: topic is required", ErrInvalidMessage)
	}
	var value []byte
	switch v := m.Value.(type) {
	case nil:
	case []byte:
		value = v
	case json.RawMessage:
		value = v
	case string:
		value = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("%w: value does not marshal to JSON: %w", ErrInvalidMessage, err)
		}
		value = b
	}
	id := correlation.Resolve(ctx, m.CorrelationID, m.Headers)
	headers := make([]sarama.RecordHeader, 0, len(m.Headers)+1)
	for k, v := range m.Headers {
		if k == correlation.Header {
			continue
		}
		headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	headers = append(headers, sarama.RecordHeader{Key: []byte(correlation.Header), Value: []byte(id)})
	rec := &sarama.ProducerMessage{Topic: m.Topic, Value: sarama.ByteEncoder(value), Headers: headers, Timestamp: m.Timestamp}
	if m.Key != "" {
		rec.Key = sarama.StringEncoder(m.Key)
	}
	if m.Partition != nil {
		if *m.Partition < 0 {
			return nil, "", fmt.Errorf("%w: partition %d is negative", ErrInvalidMessage, *m.Partition)
		}
		rec.Partition = *m.Partition
		rec.Metadata = explicitPartition{}
	}
	if rec.Timestamp.IsZero() {
		rec.Timestamp = time.Now()
	}
	return rec, id, nil
}

// explicitPartition marks a record whose Partition was chosen by the caller.
type explicitPartition struct{}

// partitioner honours an explicit partition and hashes the key otherwise.
type partitioner struct{ hash sarama.Partitioner }

func newPartitioner(topic string) sarama.Partitioner {
	return partitioner{hash: sarama.NewHashPartitioner(topic)}
}

func (p partitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if _, ok := msg.Metadata.(explicitPartition); ok {
		if msg.Partition >= n {
			return 0, fmt.Errorf("%w: partition %d does not exist (topic has %d)", ErrInvalidMessage, msg.Partition, n)
		}
		return msg.Partition, nil
	}
	return p.hash.Partition(msg, n)
}

func (p partitioner) RequiresConsistency() bool { return true }
