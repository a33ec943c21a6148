package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/failurelog"
	"github.com/torix/kafkaevents/internal/lograte"
	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// Config configures a Queue.
type Config struct {
	// Sender publishes DLQ records and returns once the broker
	// acknowledged them. Required.
	Sender wire.Sender
	// Topic is the DLQ topic, conventionally {service}.dlq. Required.
	Topic string
	// Tracer records a dlq_store span per stored record and injects the
	// trace context into it. Optional. Default: nil, which records no span
	// and writes no trace context of its own. Either way the record is
	// built with the original traceparent, tracestate and baggage, which a
	// Sender that traces replaces (kafkaevents.Stack passes its own tracer
	// to both, or none).
	Tracer *tracing.Tracer
	// Metrics receives the counters. Optional. Default: NewMetrics().
	Metrics *Metrics
	// Now is the clock. Optional. Default: time.Now.
	Now func() time.Time
	// Holder lets the middleware acknowledge a failed message as soon as
	// its DLQ record is handed to the producer, instead of when the broker
	// acknowledged it: the consumer holds the message's offset out of its
	// commits until then, so the partition keeps flowing and nothing is
	// lost. It needs a Sender that is also a wire.AsyncSender. A
	// record the broker refuses is sent again, with backoff, until it is
	// acknowledged or the hold is lost (the partition was revoked: the
	// message is then delivered again). Optional. Default: nil, every
	// hand-off waits for its record.
	Holder wire.OffsetHolder
	// Parker parks, or releases, the key of a failed record of a handler
	// that keeps key order, before its DLQ record is written; what became
	// of the key goes into wire.HeaderDLQKeyOrder. Optional. Default: nil.
	Parker wire.KeyParker
}

// Queue stores failed messages in the DLQ topic.
type Queue struct {
	cfg    Config
	logger watermill.LoggerAdapter
	// lines bounds the WARN line of each record stored, abandoned that of
	// each message left to the next owner at a stop.
	lines, abandoned *lograte.Limiter
}

// New returns a Queue, or an error naming a missing field.
func New(cfg Config, logger watermill.LoggerAdapter) (*Queue, error) {
	var errs []error
	if cfg.Sender == nil {
		errs = append(errs, errors.New("dlq: Config.Sender is required"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("dlq: Config.Topic is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Queue{cfg: cfg, logger: logger, lines: lograte.New(0, 0), abandoned: lograte.New(0, 0)}, nil
}

// Topic returns the DLQ topic name.
func (q *Queue) Topic() string { return q.cfg.Topic }

// Metrics returns the metrics the Queue and its Reprocessor write to.
func (q *Queue) Metrics() *Metrics { return q.cfg.Metrics }

// Record is what Store writes: the original record and why it failed.
type Record struct {
	// Key and Value are written unchanged.
	Key, Value []byte
	// Headers are the original headers; they are kept, except the ones the
	// DLQ record sets itself.
	Headers map[string]string
	// UUID is the Watermill message UUID, kept in _watermill_message_uuid.
	UUID string
	// Topic, Partition and Offset locate the original record; Partition and
	// Offset are written only when HasOffset.
	Topic     string
	Partition int32
	Offset    int64
	HasOffset bool
	// HandlerID is the handler that failed.
	HandlerID string
	// RetryCount is how many retries ran.
	RetryCount int
	// Reason is why the record is dead-lettered. Required.
	Reason wire.Reason
	// Err is the failure; its text becomes x-error-message.
	Err error
	// FailedAt defaults to now.
	FailedAt time.Time
	// CorrelationID defaults to the one in Headers.
	CorrelationID string
	// KeyOrder, when set, is written to wire.HeaderDLQKeyOrder.
	KeyOrder string
}

// Store writes rec to the DLQ and returns once the broker acknowledged it.
// An error wraps wire.ErrHandoff.
func (q *Queue) Store(ctx context.Context, rec Record) error {
	return q.store(ctx, nil, rec)
}

// store writes rec to the DLQ. With msg, the message rec replaces, and a
// Holder that can hold msg's offset, it returns once the record is handed to
// the producer; otherwise once the broker acknowledged it.
func (q *Queue) store(ctx context.Context, msg *message.Message, rec Record) error {
	now := q.cfg.Now().UTC()
	if rec.FailedAt.IsZero() {
		rec.FailedAt = now
	}
	if !rec.Reason.Valid() {
		return fmt.Errorf("dlq: invalid reason %q", rec.Reason)
	}
	ctx, span := q.cfg.Tracer.StartDLQ(ctx, tracing.DLQSpan{
		HandlerID: rec.HandlerID, Topic: rec.Topic, Destination: q.cfg.Topic, Reason: string(rec.Reason), RetryCount: rec.RetryCount, Err: rec.Err,
	})
	defer span.End()

	pm := q.record(ctx, &rec, now)
	if msg != nil && wire.SendHeld(ctx, q.cfg.Sender, q.cfg.Holder, msg, pm,
		func(sent *sarama.ProducerMessage) { q.stored(&rec, sent) },
		func(err error) {
			tracing.MarkFailed(span, err)
			q.logger.Error("Storing in the DLQ failed; sending the record again", err, watermill.LogFields{
				"dlq_topic": q.cfg.Topic, "original_topic": rec.Topic, "handler_id": rec.HandlerID, "reason": string(rec.Reason),
			})
		},
		func() {
			q.logger.Info("Partition revoked before the DLQ record was written; the message will be delivered again", watermill.LogFields{
				"dlq_topic": q.cfg.Topic, "original_topic": rec.Topic,
			})
		}) {
		return nil
	}
	if err := q.cfg.Sender.SendRecord(ctx, pm); err != nil {
		tracing.MarkFailed(span, err)
		return fmt.Errorf("%w: DLQ record to %s: %w", wire.ErrHandoff, q.cfg.Topic, err)
	}
	q.stored(&rec, pm)
	return nil
}

// stored counts and logs a DLQ record the broker acknowledged. The WARN
// line is written at most as often as q.lines allows; the next line written
// says how many were held back.
func (q *Queue) stored(rec *Record, pm *sarama.ProducerMessage) {
	q.cfg.Metrics.stored(rec.Topic, rec.Reason)
	ok, suppressed := q.lines.Allow()
	if !ok {
		return
	}
	// One coordinate per record: the original's topic, partition and
	// offset, and the DLQ record's own.
	fields := watermill.LogFields{
		"handler_id": rec.HandlerID, "topic": rec.Topic, "retry_count": rec.RetryCount, "reason": string(rec.Reason),
		"dlq_topic": q.cfg.Topic, "dlq_partition": pm.Partition, "dlq_offset": pm.Offset,
	}
	if rec.HasOffset {
		fields["partition"], fields["offset"] = rec.Partition, rec.Offset
	}
	for _, h := range pm.Headers {
		if string(h.Key) == wire.HeaderCorrelationID {
			fields["correlation_id"] = string(h.Value)
		}
	}
	if rec.Err != nil {
		fields["error"] = wire.TruncateError(rec.Err.Error())
		if stack := wire.PanicStack(rec.Err, wire.PanicStackLines); stack != "" {
			fields["panic_stack"] = stack
		}
	}
	if suppressed > 0 {
		fields["lines_suppressed"] = suppressed
	}
	failurelog.Warn(q.logger, "Message stored in the DLQ", fields)
}

// record builds the DLQ record of rec, stored at now. It is not inlined, so
// that its frame is gone before store hands the record to the producer: a
// hand-off runs at the bottom of a handler's goroutine, whose stack grows by
// copying.
//
//go:noinline
func (q *Queue) record(ctx context.Context, rec *Record, now time.Time) *sarama.ProducerMessage {
	headers := wire.CopyHeaders(rec.Headers, 15, isOwnHeader)
	headers.SetOrigin(rec.UUID, rec.Topic, rec.HasOffset, rec.Partition, rec.Offset)
	set := headers.Set
	set(wire.HeaderHandlerID, rec.HandlerID)
	headers.SetInt(wire.HeaderRetryCount, int64(rec.RetryCount))
	errText := ""
	if rec.Err != nil {
		errText = wire.TruncateError(rec.Err.Error())
	}
	set(wire.HeaderErrorMessage, errText)
	headers.SetTime(wire.HeaderFailedAt, rec.FailedAt)
	headers.SetTime(wire.HeaderDLQStoredAt, now)
	set(wire.HeaderDLQReason, string(rec.Reason))
	if stack := wire.PanicStack(rec.Err, wire.PanicStackLines); stack != "" {
		set(wire.HeaderDLQPanicStack, stack)
	}
	if rec.KeyOrder != "" {
		set(wire.HeaderDLQKeyOrder, rec.KeyOrder)
	}
	id := rec.CorrelationID
	if id == "" {
		id = correlation.FromMetadata(rec.Headers)
	}
	if id == "" {
		id = correlation.FromContext(ctx)
	}
	if id != "" {
		set(wire.HeaderCorrelationID, id)
	}
	pm := &sarama.ProducerMessage{Topic: q.cfg.Topic, Value: sarama.ByteEncoder(rec.Value), Headers: headers.Headers()}
	if rec.Key != nil {
		pm.Key = sarama.ByteEncoder(rec.Key)
	}
	return pm
}

// isOwnHeader reports headers that the DLQ record sets itself, so stale
// copies (from a retry record or an earlier DLQ trip) are not duplicated.
// The trace headers (traceparent, tracestate, baggage) are not among them:
// the tracer, when it records a span, replaces them with that span's context
// as the record is sent, and without one they reach the DLQ unchanged.
func isOwnHeader(k string) bool {
	switch k {
	case wire.HeaderWatermillUUID, wire.HeaderOriginalTopic, wire.HeaderOriginalPartition,
		wire.HeaderOriginalOffset, wire.HeaderHandlerID, wire.HeaderRetryCount,
		wire.HeaderErrorMessage, wire.HeaderFailedAt, wire.HeaderDLQStoredAt,
		wire.HeaderDLQReason, wire.HeaderDLQPanicStack, wire.HeaderCorrelationID,
		wire.HeaderRetryAfter, wire.HeaderUnmarshalError, wire.HeaderDLQKeyOrder:
		return true
	}
	return false
}

// Middleware is the poison-queue middleware. A message marked undecodable by
// the library's unmarshaler is stored without calling the handler. When the
// wrapped handler fails, the message is stored with the reason its error
// carries (see wire.ReasonOf), or retry-disabled when it carries none, and
// the middleware returns nil so the original is acknowledged: once the
// broker acknowledged the DLQ record or, with a Holder that holds the
// message's offset, once the record is handed to the producer. A failure to
// store, a hand-off error from the retry middleware, and failures of
// deliveries made with wire.WithoutHandoff are returned unchanged, so
// Watermill redelivers.
//
// A failure after the message's context was cancelled is not dead-lettered:
// the consume layer cancels a message's context only when it stops consuming
// the record (its subscription stops, or a rebalance gives up on it), so the
// handler's error, typically ctx.Err(), says the record was abandoned, not
// that it failed. The context checked is the one the message had when it
// reached this middleware, so that a middleware inside it that replaces the
// context and cancels its own on return (Watermill's Timeout does) is not
// taken for a stop. The middleware then writes no DLQ record, counts
// nothing, logs one INFO line (none when the retry middleware inside it
// wrote the record's) and returns the error unchanged: the message is
// nacked, its offset stays uncommitted and the record is delivered again to
// the next owner of its partition. A handler error while that context is
// live, or once its deadline passed (a timeout is a failure), is a failure
// like any other.
func (q *Queue) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		out, err := h(msg)
		if err == nil {
			return out, nil
		}
		return nil, q.failed(ctx, msg, err)
	}
}

// failed stores the message whose handler returned err, or returns the error
// to give back to the router. It is a function of its own so that the frame
// of Middleware, live while the handler runs, stays small: Watermill runs
// each message in a new goroutine whose stack grows by copying.
//
// ctx is the message's context when it reached the middleware: a
// middleware inside this one may have replaced the message's context with
// one it cancelled on return (Watermill's Timeout does). The record is
// stored with it, and a cancelled one means the consume layer gave the
// record up.
func (q *Queue) failed(ctx context.Context, msg *message.Message, err error) error {
	if errors.Is(err, wire.ErrHandoff) || wire.HandoffDisabled(msg.Context()) {
		return err
	}
	d := wire.DeliveryOf(msg)
	if failurelog.Abandoned(ctx) {
		failurelog.LogAbandoned(q.logger, q.abandoned, msg, err)
		return err
	}
	reason, ok := wire.ReasonOf(err)
	if !ok {
		reason = wire.ReasonRetryDisabled
	}
	rec := Record{
		Key: d.Key, Value: msg.Payload, Headers: msg.Metadata, UUID: msg.UUID,
		Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, HasOffset: d.HasOffset,
		HandlerID: d.HandlerID, RetryCount: d.RetryCount, Reason: reason, Err: err,
		CorrelationID: correlation.FromMessage(msg),
	}
	if !d.HasOffset {
		rec.Partition, rec.Offset, rec.HasOffset = originalOffset(msg.Metadata)
	}
	if q.cfg.Parker != nil {
		if perr := q.park(msg, &d, &rec); perr != nil {
			return perr
		}
	}
	if serr := q.store(ctx, msg, rec); serr != nil {
		q.logger.Error("Storing in the DLQ failed; the message will be redelivered", serr, watermill.LogFields{
			"handler_id": d.HandlerID, "original_topic": d.Topic, "reason": string(reason),
		})
		return serr
	}
	wire.Report(msg, wire.Outcome{Kind: wire.OutcomeDeadLettered, Reason: reason, Err: err})
	return nil
}

// park parks or releases the key of msg, delivered as d, before rec, its
// DLQ record, is stored, and says in rec what became of it.
//
//go:noinline
func (q *Queue) park(msg *message.Message, d *wire.Delivery, rec *Record) error {
	d.Partition, d.Offset, d.HasOffset = rec.Partition, rec.Offset, rec.HasOffset
	what, err := q.cfg.Parker.Park(msg.Context(), msg, d, true)
	if err != nil {
		q.logger.Error("Parking the key of the failed message failed; the message will be redelivered", err, watermill.LogFields{
			"handler_id": d.HandlerID, "original_topic": d.Topic,
		})
		return fmt.Errorf("%w: parking its key: %w", wire.ErrHandoff, err)
	}
	rec.KeyOrder = what
	return nil
}

func originalOffset(md message.Metadata) (int32, int64, bool) {
	p, err1 := strconv.ParseInt(md.Get(wire.HeaderOriginalPartition), 10, 32)
	o, err2 := strconv.ParseInt(md.Get(wire.HeaderOriginalOffset), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int32(p), o, true
}

// StoreConsumed stores a raw consumed record that cannot be dispatched (for
// example an unroutable retry record). It has the shape of
// delayedretry.DeadLetterFunc.
func (q *Queue) StoreConsumed(ctx context.Context, cm *sarama.ConsumerMessage, reason wire.Reason, cause error) error {
	hdr := make(map[string]string, len(cm.Headers))
	for _, h := range cm.Headers {
		if h != nil {
			hdr[string(h.Key)] = string(h.Value)
		}
	}
	rec := Record{
		Key: cm.Key, Value: cm.Value, Headers: hdr, UUID: hdr[wire.HeaderWatermillUUID],
		Topic: hdr[wire.HeaderOriginalTopic], HandlerID: hdr[wire.HeaderHandlerID],
		Reason: reason, Err: cause,
	}
	if rec.Topic == "" {
		rec.Topic = cm.Topic
	}
	if n, err := strconv.Atoi(hdr[wire.HeaderRetryCount]); err == nil && n >= 0 {
		rec.RetryCount = n
	}
	rec.Partition, rec.Offset, rec.HasOffset = originalOffset(hdr)
	if !rec.HasOffset && rec.Topic == cm.Topic {
		rec.Partition, rec.Offset, rec.HasOffset = cm.Partition, cm.Offset, true
	}
	return q.Store(ctx, rec)
}
