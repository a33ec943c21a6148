package delayedretry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Mode selects the retry topic layout.
type Mode string

const (
	// ModeLanes uses one topic per distinct delay: no head-of-line blocking
	// between different delays. The default.
	ModeLanes Mode = "lanes"
	// ModeSingle uses the one topic {prefix}: a record due later at the head
	// of a partition holds back the records behind it.
	ModeSingle Mode = "single"
)

// Config configures a Retrier.
type Config struct {
	// Sender publishes retry records and returns once the broker
	// acknowledged them. Required.
	Sender wire.Sender
	// TopicPrefix names the retry topics: {TopicPrefix} in ModeSingle,
	// {TopicPrefix}.{delay} in ModeLanes (e.g. "orders.retry.300ms").
	// Required.
	TopicPrefix string
	// Mode is ModeLanes or ModeSingle. Optional. Default: ModeLanes.
	Mode Mode
	// Policy applies to handlers without a policy of their own. Optional.
	// Default: DefaultPolicy.
	Policy Policy
	// Tracer records a retry span per scheduled retry and injects the trace
	// context into the record. Optional. Default: nil, which records no
	// span and writes no trace context of its own. Either way the record
	// is built with the message's traceparent, tracestate and baggage,
	// which a Sender that traces replaces (kafkaevents.Stack passes its
	// own tracer to both, or none).
	Tracer *tracing.Tracer
	// Metrics receives the counters. Optional. Default: NewMetrics().
	Metrics *Metrics
	// Now is the clock. Optional. Default: time.Now.
	Now func() time.Time
	// Holder lets the middleware acknowledge a failed message as soon as
	// its retry record is handed to the producer, instead of when the
	// broker acknowledged it: the consumer holds the message's offset out
	// of its commits until then, so the partition keeps flowing and
	// nothing is lost. It needs a Sender that is also a
	// wire.AsyncSender. A record the broker refuses is sent again,
	// with backoff, until it is acknowledged or the hold is lost (the
	// partition was revoked: the message is then delivered again).
	// Optional. Default: nil, every hand-off waits for its record.
	Holder wire.OffsetHolder
	// Parker parks the key of a failed record of a handler whose policy
	// has KeepKeyOrder, before its retry record is written. Optional.
	// Default: nil, KeepKeyOrder has no effect.
	Parker wire.KeyParker
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = ModeLanes
	}
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports missing or invalid fields.
func (c Config) Validate() error {
	var errs []error
	if c.Sender == nil {
		errs = append(errs, errors.New("delayedretry: Config.Sender is required"))
	}
	if c.TopicPrefix == "" {
		errs = append(errs, errors.New("delayedretry: Config.TopicPrefix is required"))
	}
	if c.Mode != ModeLanes && c.Mode != ModeSingle {
		errs = append(errs, fmt.Errorf("delayedretry: Config.Mode = %q: want %q or %q", c.Mode, ModeLanes, ModeSingle))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("delayedretry: Config.Policy: %w", err))
	}
	return errors.Join(errs...)
}

// Retrier is the retry middleware. Create it with New; add it with
// router.AddMiddleware(retrier.Middleware), inside the DLQ middleware.
type Retrier struct {
	cfg    Config
	logger watermill.LoggerAdapter
	// lines bounds the WARN line of each retry scheduled, abandoned that of
	// each message left to the next owner at a stop.
	lines, abandoned *lograte.Limiter

	mu       sync.RWMutex
	policies map[string]Policy
	// lanes and laneTopics cache Lanes and their topics while lanesOK;
	// SetPolicy invalidates them. Every scheduled retry reads them.
	lanes      []time.Duration
	laneTopics []string
	lanesOK    bool
}

// New returns a Retrier, or an error naming the bad Config field.
func New(cfg Config, logger watermill.LoggerAdapter) (*Retrier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Retrier{cfg: cfg, logger: logger, lines: lograte.New(0, 0), abandoned: lograte.New(0, 0), policies: map[string]Policy{}}, nil
}

// SetPolicy gives handlerID its own policy, replacing the default for it. Call
// it before the retry topics are provisioned so its delays get lanes.
func (r *Retrier) SetPolicy(handlerID string, p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("handler %q: %w", handlerID, err)
	}
	r.mu.Lock()
	r.policies[handlerID] = p
	r.lanesOK = false
	r.mu.Unlock()
	return nil
}

// PolicyFor returns the policy that applies to handlerID.
func (r *Retrier) PolicyFor(handlerID string) Policy {
	r.mu.RLock()
	p, ok := r.policies[handlerID]
	r.mu.RUnlock()
	if ok {
		return p
	}
	return r.cfg.Policy
}

// Metrics returns the metrics the Retrier writes to.
func (r *Retrier) Metrics() *Metrics { return r.cfg.Metrics }

// Lanes returns the distinct nominal delays of every policy in use, sorted.
// In ModeSingle it returns nil.
func (r *Retrier) Lanes() []time.Duration {
	if r.cfg.Mode == ModeSingle {
		return nil
	}
	lanes, _ := r.cachedLanes()
	return slices.Clone(lanes)
}

// ShortestDelay returns the shortest nominal delay of any policy in use (the
// first attempt's: later ones are never shorter), or 0 when every policy is
// disabled. No retry record is due sooner after it was written.
func (r *Retrier) ShortestDelay() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var shortest time.Duration
	consider := func(p Policy) {
		if d := p.Delay(1); !p.Disabled && p.Attempts >= 1 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	consider(r.cfg.Policy)
	for _, p := range r.policies {
		consider(p)
	}
	return shortest
}

// cachedLanes returns the lanes and their topics, computing them after a
// SetPolicy. The results are shared: do not modify them.
func (r *Retrier) cachedLanes() ([]time.Duration, []string) {
	r.mu.RLock()
	lanes, topics, ok := r.lanes, r.laneTopics, r.lanesOK
	r.mu.RUnlock()
	if ok {
		return lanes, topics
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lanesOK {
		all := r.cfg.Policy.Delays()
		for _, p := range r.policies {
			all = append(all, p.Delays()...)
		}
		for i, d := range all {
			all[i] = d.Truncate(time.Millisecond)
		}
		slices.Sort(all)
		r.lanes = slices.Compact(all)
		r.laneTopics = make([]string, len(r.lanes))
		for i, d := range r.lanes {
			r.laneTopics[i] = LaneTopic(r.cfg.TopicPrefix, d)
		}
		r.lanesOK = true
	}
	return r.lanes, r.laneTopics
}

// Topics returns the retry topics to provision and consume.
func (r *Retrier) Topics() []string {
	if r.cfg.Mode == ModeSingle {
		return []string{r.cfg.TopicPrefix}
	}
	lanes := r.Lanes()
	out := make([]string, 0, len(lanes))
	for _, d := range lanes {
		out = append(out, LaneTopic(r.cfg.TopicPrefix, d))
	}
	return out
}

// LaneTopic names the lane of delay d: prefix + "." + the delay in whole
// seconds ("5s") when it is one, else in milliseconds ("300ms").
func LaneTopic(prefix string, d time.Duration) string {
	ms := d.Milliseconds()
	if ms%1000 == 0 {
		return prefix + "." + strconv.FormatInt(ms/1000, 10) + "s"
	}
	return prefix + "." + strconv.FormatInt(ms, 10) + "ms"
}

// topicFor picks the lane with the largest delay not above d, so the lane's
// own delay never exceeds the record's.
func (r *Retrier) topicFor(d time.Duration) string {
	if r.cfg.Mode == ModeSingle {
		return r.cfg.TopicPrefix
	}
	lanes, topics := r.cachedLanes()
	if len(lanes) == 0 {
		return LaneTopic(r.cfg.TopicPrefix, d)
	}
	i, found := slices.BinarySearch(lanes, d.Truncate(time.Millisecond))
	if !found {
		i--
	}
	if i < 0 {
		i = 0
	}
	return topics[i]
}

// Middleware retries failures of the wrapped handler. On success it returns
// the handler's messages. On a retryable failure (any error that is not
// marked Permanent or Undecodable and not a handoff error) with attempts left
// it publishes a retry record and returns nil, so the original is
// acknowledged; if publishing fails it returns an error wrapping wire.ErrHandoff
// and Watermill redelivers. With a Config.Holder that holds the message's
// offset, it returns nil as soon as the record is handed to the producer
// (see Config.Holder). Otherwise it returns the error wrapped with its
// DLQ reason (retries-exhausted, retry-disabled, or the reason it carries).
//
// A failure after the message's context was cancelled is not retried: the
// consume layer cancels a message's context only when it stops consuming
// the record (its subscription stops, or a rebalance gives up on it), so
// the handler's error, typically ctx.Err(), says the record was abandoned,
// not that it failed. The context checked is the one the message had when
// it reached this middleware, so that a middleware inside it that replaces
// the context and cancels its own on return (Watermill's Timeout does) is
// not taken for a stop. The middleware then writes no retry record, counts
// nothing, logs one INFO line (one for the record, when the retry and the DLQ
// middleware both see it) and returns the error unchanged: the message is
// nacked, its offset stays uncommitted and the record is delivered again
// to the next owner of its partition. A handler error while that context is
// live, or once its deadline passed (a timeout is a failure), is a failure
// like any other.
func (r *Retrier) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		out, err := h(msg)
		if err == nil {
			r.succeeded(msg)
			return out, nil
		}
		return nil, r.failed(ctx, msg, err)
	}
}

// succeeded and failed are functions of their own so that the frame of
// Middleware, live while the handler runs, stays small: Watermill runs each
// message in a new goroutine whose stack grows by copying.

func (r *Retrier) succeeded(msg *message.Message) {
	r.cfg.Metrics.of(wire.HandlerIDOf(msg)).processed.Add(1)
}

// failed schedules a retry of the message whose handler returned err and
// returns nil, or returns the error to give back to the router; ctx is the
// message's context when it reached the middleware.
func (r *Retrier) failed(ctx context.Context, msg *message.Message, err error) error {
	d := wire.DeliveryOf(msg)
	c := r.cfg.Metrics.of(d.HandlerID)
	if errors.Is(err, wire.ErrHandoff) {
		return err
	}
	if failurelog.Abandoned(ctx) {
		failurelog.LogAbandoned(r.logger, r.abandoned, msg, err)
		return err
	}
	c.errors.Add(1)
	if !wire.IsRetryable(err) {
		c.skipped.Add(1)
		return err
	}
	p := r.PolicyFor(d.HandlerID)
	if p.Disabled {
		c.skipped.Add(1)
		return wire.WithReason(wire.ReasonRetryDisabled, err)
	}
	attempt := d.RetryCount + 1
	if attempt > p.Attempts {
		c.exhausted.Add(1)
		return wire.WithReason(wire.ReasonRetriesExhausted, err)
	}
	if wire.HandoffDisabled(msg.Context()) {
		return err
	}
	if p.KeepKeyOrder && r.cfg.Parker != nil {
		if perr := r.park(msg, &d); perr != nil {
			return perr
		}
	}
	if herr := r.schedule(msg, &d, &p, attempt, err, c); herr != nil {
		return herr
	}
	wire.Report(msg, wire.Outcome{Kind: wire.OutcomeRetried, Err: err})
	return nil
}

// schedule sends the retry record of msg. With a Holder that can hold msg's
// offset it returns once the record is handed to the producer; otherwise
// once the broker acknowledged it. It counts the retry as scheduled when the
// broker acknowledged the record.
func (r *Retrier) schedule(msg *message.Message, d *wire.Delivery, p *Policy, attempt int, cause error, c *counters) error {
	now := r.cfg.Now().UTC()
	delay := p.JitteredDelay(attempt)
	due := now.Add(delay)
	firstFailed := d.FirstFailedAt
	if firstFailed.IsZero() {
		firstFailed = now
	}
	topic := r.topicFor(delay)

	ctx, span := r.cfg.Tracer.StartRetry(msg.Context(), tracing.RetrySpan{
		HandlerID: d.HandlerID, Topic: d.Topic, Destination: topic, RetryCount: attempt, Delay: delay,
	})
	defer span.End()

	rec := retryRecord(msg, d, topic, attempt, now, due, firstFailed, cause)
	if wire.SendHeld(ctx, r.cfg.Sender, r.cfg.Holder, msg, rec,
		func(*sarama.ProducerMessage) {
			c.scheduled.Add(1)
			r.logScheduled(msg, d, topic, attempt, delay, cause)
		},
		func(err error) {
			tracing.MarkFailed(span, err)
			r.logRetry(err, "Publishing retry record failed; sending it again", d.HandlerID, topic, attempt, delay)
		},
		func() {
			r.logger.Info("Partition revoked before the retry record was written; the message will be delivered again", watermill.LogFields{"retry_topic": topic})
		}) {
		r.logRetry(nil, "Retry handed to the producer", d.HandlerID, topic, attempt, delay)
		return nil
	}
	if err := r.cfg.Sender.SendRecord(ctx, rec); err != nil {
		tracing.MarkFailed(span, err)
		r.logRetry(err, "Publishing retry record failed; the message will be redelivered", d.HandlerID, topic, attempt, delay)
		return fmt.Errorf("%w: retry record to %s: %w", wire.ErrHandoff, topic, err)
	}
	c.scheduled.Add(1)
	r.logScheduled(msg, d, topic, attempt, delay, cause)
	return nil
}

// park parks the key of msg behind it before its retry is scheduled.
//
//go:noinline
func (r *Retrier) park(msg *message.Message, d *wire.Delivery) error {
	if _, err := r.cfg.Parker.Park(msg.Context(), msg, d, false); err != nil {
		r.logRetry(err, "Parking the key of the failed message failed; the message will be redelivered", d.HandlerID, "", d.RetryCount+1, 0)
		return fmt.Errorf("%w: parking its key: %w", wire.ErrHandoff, err)
	}
	return nil
}

// logScheduled writes the WARN line of a retry the broker acknowledged, at
// most as often as r.lines allows; the next line written says how many were
// held back.
//
//go:noinline
func (r *Retrier) logScheduled(msg *message.Message, d *wire.Delivery, topic string, attempt int, delay time.Duration, cause error) {
	ok, suppressed := r.lines.Allow()
	if !ok {
		return
	}
	fields := watermill.LogFields{
		"handler_id": d.HandlerID, "topic": d.Topic, "attempt": attempt, "retry_topic": topic,
		"delay": delay.String(), "reason": wire.TruncateError(cause.Error()),
		"correlation_id": correlation.FromMessage(msg),
	}
	if d.HasOffset {
		fields["partition"], fields["offset"] = d.Partition, d.Offset
	}
	if stack := wire.PanicStack(cause, wire.PanicStackLines); stack != "" {
		fields["panic_stack"] = stack
	}
	if suppressed > 0 {
		fields["lines_suppressed"] = suppressed
	}
	failurelog.Warn(r.logger, "Retry scheduled", fields)
}

// retryRecord builds the retry record of msg. It is a function of its own,
// and not inlined, so that its frame (the header values are formatted in
// it) is gone before schedule hands the record to the producer: the retry
// hand-off runs at the bottom of a handler's goroutine, whose stack grows by
// copying.
//
//go:noinline
func retryRecord(msg *message.Message, d *wire.Delivery, topic string, attempt int, now, due, firstFailed time.Time, cause error) *sarama.ProducerMessage {
	headers := wire.CopyHeaders(msg.Metadata, 10, isRetryHeader)
	headers.SetOrigin(msg.UUID, d.Topic, d.HasOffset, d.Partition, d.Offset) // the offset: from the main topic, or carried along
	headers.Set(wire.HeaderHandlerID, d.HandlerID)
	headers.SetInt(wire.HeaderRetryCount, int64(attempt))
	headers.SetTime(wire.HeaderRetryAfter, due)
	headers.SetTime(wire.HeaderFirstFailedAt, firstFailed)
	headers.SetTime(wire.HeaderFailedAt, now)
	headers.Set(wire.HeaderErrorMessage, wire.TruncateError(cause.Error()))
	if id := correlation.FromMessage(msg); id != "" {
		headers.Set(wire.HeaderCorrelationID, id)
	}
	rec := &sarama.ProducerMessage{
		Topic:   topic,
		Value:   sarama.ByteEncoder(msg.Payload),
		Headers: headers.Headers(),
	}
	if d.Key != nil {
		rec.Key = sarama.ByteEncoder(d.Key)
	}
	return rec
}

// logRetry logs what became of a retry record: at error level with err,
// else at debug level. It is a function of its own so that the log fields
// are not in the frame of schedule, which runs at the bottom of a handler's
// goroutine: Watermill starts one per message, with a small stack that
// grows by copying.
//
//go:noinline
func (r *Retrier) logRetry(err error, msg, handlerID, topic string, attempt int, delay time.Duration) {
	fields := watermill.LogFields{"handler_id": handlerID, "retry_topic": topic, "retry_count": attempt, "delay": delay.String()}
	if err != nil {
		r.logger.Error(msg, err, fields)
		return
	}
	r.logger.Debug(msg, fields)
}

// isRetryHeader reports headers that the retry record sets itself, so stale
// copies from an earlier attempt are not carried along. The trace headers
// (traceparent, tracestate, baggage) are copied like any other: the tracer,
// when it records a span, replaces them with that span's context as the
// record is sent, and without one they reach the retry record unchanged.
func isRetryHeader(k string) bool {
	switch k {
	case wire.HeaderOriginalTopic, wire.HeaderHandlerID, wire.HeaderRetryCount,
		wire.HeaderRetryAfter, wire.HeaderFirstFailedAt, wire.HeaderFailedAt,
		wire.HeaderErrorMessage, wire.HeaderCorrelationID, wire.HeaderWatermillUUID,
		wire.HeaderOriginalPartition, wire.HeaderOriginalOffset,
		wire.HeaderUnmarshalError:
		return true
	}
	return strings.HasPrefix(k, "x-dlq-")
}
