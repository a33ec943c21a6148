package kafkaevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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
	// sync sends the records of SendRecord, which belong to the caller.
	sync sarama.SyncProducer
	// async sends the records SendBatch builds; their Metadata says which
	// batch and index each is, for the goroutines reading its results.
	async   sarama.AsyncProducer
	results sync.WaitGroup
	tracer  *tracing.Tracer
}

// NewProducer returns a Producer on client. Closing the Producer does not
// close client. tracer may be nil (no spans, no trace headers).
func NewProducer(client sarama.Client, tracer *tracing.Tracer) (*Producer, error) {
	sp, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: producer: %w", err)
	}
	p, err := newAsyncProducer(client, tracer)
	if err != nil {
		_ = sp.Close()
		return nil, err
	}
	p.sync = sp
	return p, nil
}

// newAsyncProducer returns a Producer on client without a SyncProducer: it
// may only be used for SendBatch and SendRecordAsync.
func newAsyncProducer(client sarama.Client, tracer *tracing.Tracer) (*Producer, error) {
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: producer: %w", err)
	}
	p := &Producer{async: ap, tracer: tracer}
	p.results.Add(2)
	go func() {
		defer p.results.Done()
		for rec := range ap.Successes() {
			rec.Metadata.(pendingRecord).done(nil)
		}
	}()
	go func() {
		defer p.results.Done()
		for perr := range ap.Errors() {
			perr.Msg.Metadata.(pendingRecord).done(perr.Err)
		}
	}()
	return p, nil
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
	// Every message is checked, and its value marshalled, before any is sent.
	values := make([][]byte, len(ms))
	for i, m := range ms {
		v, err := recordValue(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		values[i] = v
	}
	// Each record goes to the producer as soon as it is built, so building
	// the next ones overlaps sending the first.
	b := &batch{recs: make([]batchRecord, len(ms))}
	b.pending.Add(len(ms))
	results := make([]Result, len(ms))
	ends := make([]func(int32, int64, error), len(ms))
	for i, m := range ms {
		rec, id := buildRecord(ctx, m, values[i])
		b.recs[i] = batchRecord{batch: b, rec: rec, explicit: m.Partition != nil}
		rec.Metadata = &b.recs[i]
		_, ends[i] = p.tracer.StartSend(ctx, rec)
		results[i] = Result{Topic: m.Topic, CorrelationID: id}
		p.async.Input() <- rec
	}
	b.pending.Wait()
	var errs []error
	for i := range b.recs {
		r := &b.recs[i]
		if r.err != nil {
			ends[i](0, 0, r.err)
			errs = append(errs, fmt.Errorf("message %d to %s: %w", i, r.rec.Topic, r.err))
			results[i] = Result{}
			continue
		}
		ends[i](r.rec.Partition, r.rec.Offset, nil)
		results[i].Partition, results[i].Offset = r.rec.Partition, r.rec.Offset
	}
	if len(errs) > 0 {
		return results, fmt.Errorf("kafkaevents: send: %w", errors.Join(errs...))
	}
	return results, nil
}

// batch is a SendBatch call waiting for its records.
type batch struct {
	recs    []batchRecord
	pending sync.WaitGroup
}

// batchRecord is the Metadata of a record sent by SendBatch.
type batchRecord struct {
	batch *batch
	rec   *sarama.ProducerMessage
	// explicit is true when the caller chose the partition.
	explicit bool
	err      error
}

// pendingRecord is the Metadata of a record sent on the AsyncProducer: the
// goroutines reading its results call done with the broker's answer.
type pendingRecord interface{ done(err error) }

// done records the outcome of the record.
func (r *batchRecord) done(err error) {
	r.err = err
	r.batch.pending.Done()
}

// SendRecord implements wire.Sender: it stamps the correlation ID from
// ctx when rec has none, records a send span, injects the trace context and
// waits for the broker's acknowledgement.
func (p *Producer) SendRecord(ctx context.Context, rec *sarama.ProducerMessage) error {
	end := p.startRecord(ctx, rec)
	partition, offset, err := p.sync.SendMessage(rec)
	end(partition, offset, err)
	return err
}

// startRecord stamps the correlation ID from ctx on rec when it has none,
// starts its send span and injects the trace context; the caller ends the
// span with the broker's answer.
func (p *Producer) startRecord(ctx context.Context, rec *sarama.ProducerMessage) func(partition int32, offset int64, err error) {
	return startRecord(ctx, p.tracer, rec)
}

// startRecord is Producer.startRecord with tracer.
func startRecord(ctx context.Context, tracer *tracing.Tracer, rec *sarama.ProducerMessage) func(partition int32, offset int64, err error) {
	if !hasHeader(rec.Headers, correlation.Header) {
		if id := correlation.FromContext(ctx); id != "" {
			rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(correlation.Header), Value: []byte(id)})
		}
	}
	_, end := tracer.StartSend(ctx, rec)
	return end
}

// SendRecordAsync implements wire.AsyncSender: it stamps the
// correlation ID and the trace context as SendRecord does, hands rec to the
// asynchronous producer and returns; done is called once with the broker's
// answer, from a goroutine of the producer, so it must not block. rec.Metadata
// is overwritten.
func (p *Producer) SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error)) {
	rec.Metadata = &asyncRecord{rec: rec, end: p.startRecord(ctx, rec), cb: done}
	p.async.Input() <- rec
}

// asyncRecord is the Metadata of a record sent by SendRecordAsync.
type asyncRecord struct {
	rec *sarama.ProducerMessage
	end func(partition int32, offset int64, err error)
	cb  func(error)
}

func (r *asyncRecord) done(err error) {
	r.end(r.rec.Partition, r.rec.Offset, err)
	r.cb(err)
}

// Close flushes and closes the producer. It does not close the client.
func (p *Producer) Close() error {
	p.async.AsyncClose()
	var err error
	if p.sync != nil {
		err = p.sync.Close()
	}
	p.results.Wait()
	return err
}

func hasHeader(hs []sarama.RecordHeader, key string) bool {
	for _, h := range hs {
		if string(h.Key) == key {
			return true
		}
	}
	return false
}

// recordValue checks m and returns its value as bytes.
func recordValue(m Message) ([]byte, error) {
	if m.Topic == "" {
		return nil, fmt.Errorf("%w: topic is required", ErrInvalidMessage)
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
			return nil, fmt.Errorf("%w: value does not marshal to JSON: %w", ErrInvalidMessage, err)
		}
		value = b
	}
	if m.Partition != nil && *m.Partition < 0 {
		return nil, fmt.Errorf("%w: partition %d is negative", ErrInvalidMessage, *m.Partition)
	}
	return value, nil
}

// buildRecord builds the record of m, checked by recordValue, and returns it
// with its correlation ID.
func buildRecord(ctx context.Context, m Message, value []byte) (*sarama.ProducerMessage, string) {
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
		rec.Partition = *m.Partition
	}
	if rec.Timestamp.IsZero() {
		rec.Timestamp = time.Now()
	}
	return rec, id
}

// partitioner honours an explicit partition and hashes the key otherwise.
type partitioner struct{ hash sarama.Partitioner }

func newPartitioner(topic string) sarama.Partitioner {
	return partitioner{hash: sarama.NewHashPartitioner(topic)}
}

func (p partitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if r, ok := msg.Metadata.(*batchRecord); ok && r.explicit {
		if msg.Partition >= n {
			return 0, fmt.Errorf("%w: partition %d does not exist (topic has %d)", ErrInvalidMessage, msg.Partition, n)
		}
		return msg.Partition, nil
	}
	return p.hash.Partition(msg, n)
}

func (p partitioner) RequiresConsistency() bool { return true }
