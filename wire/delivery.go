package wire

import (
	"context"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Source says where a delivery comes from.
type Source int

const (
	// SourceMain is a record consumed from its own topic by the router.
	SourceMain Source = iota
	// SourceRetry is a retry record delivered when due.
	SourceRetry
	// SourceReprocess is a DLQ record being reprocessed.
	SourceReprocess
	// SourceParked is a record that was set aside behind its parked key
	// (delayedretry.Policy.KeepKeyOrder), delivered once the key's head
	// was handled.
	SourceParked
)

// String returns "main", "retry", "reprocess" or "parked".
func (s Source) String() string {
	switch s {
	case SourceRetry:
		return "retry"
	case SourceReprocess:
		return "reprocess"
	case SourceParked:
		return "parked"
	default:
		return "main"
	}
}

// Delivery describes one delivery of a message to a handler: which handler,
// which original record, and which attempt. Middlewares read it with
// DeliveryOf.
type Delivery struct {
	// HandlerID is the handler the message is delivered to.
	HandlerID string
	// Topic is the original topic (not a retry topic or the DLQ).
	Topic string
	// Partition and Offset locate the original record; HasOffset is false
	// when they are unknown.
	Partition int32
	Offset    int64
	HasOffset bool
	// Key is the original record key (nil when it had none).
	Key []byte
	// RetryCount is 0 for a first delivery, k for the k-th retry.
	RetryCount int
	// ReprocessCount counts reprocess runs the record went through.
	ReprocessCount int
	// FirstFailedAt is when the first delivery failed (zero on a first delivery).
	FirstFailedAt time.Time
	// Source says where the delivery comes from.
	Source Source
	// Report, when not nil, is told how the delivery ended; see Outcome.
	Report func(Outcome)
}

// Outcome is how a delivery ended, as seen by the middlewares that hand a
// failed message off.
type Outcome struct {
	// Kind is "handled", "retried" or "dead-lettered".
	Kind string
	// Reason is set when Kind is "dead-lettered".
	Reason Reason
	// Err is the handler error for "retried" and "dead-lettered".
	Err error
}

// Outcome kinds.
const (
	OutcomeHandled      = "handled"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead-lettered"
)

type deliveryKey struct{}

// WithDelivery returns ctx carrying d. Dispatchers of retry and reprocess
// records use it; main-topic deliveries are described from the router's and
// watermill-kafka's context values.
func WithDelivery(ctx context.Context, d Delivery) context.Context {
	// A pointer, so that readers of a single field do not copy the struct.
	return context.WithValue(ctx, deliveryKey{}, &d)
}

// DeliveryOf describes msg's delivery. For a record the router consumed from
// its own topic it reads the handler name and topic that the router put in
// the context and the partition, offset and key that watermill-kafka put
// there; the retry count comes from HeaderRetryCount when present.
func DeliveryOf(msg *message.Message) Delivery {
	ctx := msg.Context()
	if d, ok := ctx.Value(deliveryKey{}).(*Delivery); ok {
		return *d
	}
	d := DeliveryFromContext(ctx)
	// Most messages have no reprocess count: skip strconv.Atoi, whose error
	// for "" is an allocation on every delivery.
	if v := msg.Metadata.Get(HeaderReprocessCount); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			d.ReprocessCount = n
		}
	}
	return d
}

// DeliveryFromContext describes the delivery of the message whose context
// is ctx, as DeliveryOf does, for code that has the context and not the
// message: a typed handler of kafkaevents.JSON. Retries and reprocessed
// deliveries are described in full; for a first delivery the handler, topic,
// partition, offset and key come from the router's and watermill-kafka's
// context values (ReprocessCount, read from a header, is 0 there).
func DeliveryFromContext(ctx context.Context) Delivery {
	if d, ok := ctx.Value(deliveryKey{}).(*Delivery); ok {
		return *d
	}
	d := Delivery{
		HandlerID: message.HandlerNameFromCtx(ctx),
		Topic:     message.SubscribeTopicFromCtx(ctx),
		Source:    SourceMain,
	}
	if p, ok := kafka.MessagePartitionFromCtx(ctx); ok {
		d.Partition = p
		if o, ok := kafka.MessagePartitionOffsetFromCtx(ctx); ok {
			d.Offset, d.HasOffset = o, true
		}
	}
	if k, ok := kafka.MessageKeyFromCtx(ctx); ok {
		d.Key = k
	}
	return d
}

// HandlerIDOf returns DeliveryOf(msg).HandlerID without building the rest of
// the Delivery, for the middlewares that need only the handler ID on every
// message (metrics on the success path).
//
// Its frame is small, and the look-up of the Delivery is in a function of
// its own: the middlewares call it deep in the chain, on the goroutine
// Watermill starts per message, whose stack grows by copying.
func HandlerIDOf(msg *message.Message) string {
	if d := deliveryOf(msg); d != nil {
		return d.HandlerID
	}
	return message.HandlerNameFromCtx(msg.Context())
}

// deliveryOf returns the Delivery of msg's context, or nil.
//
//go:noinline
func deliveryOf(msg *message.Message) *Delivery {
	d, _ := msg.Context().Value(deliveryKey{}).(*Delivery)
	return d
}

// RetryCountOf returns DeliveryOf(msg).RetryCount without building the rest
// of the Delivery: 0 for a first delivery, k for the k-th retry. Its frame is
// small, which matters in a handler: Watermill runs each message in a new
// goroutine whose stack grows by copying.
func RetryCountOf(msg *message.Message) int {
	if d, ok := msg.Context().Value(deliveryKey{}).(*Delivery); ok {
		return d.RetryCount
	}
	return 0
}

// Report tells the delivery's reporter, if any, how it ended.
func Report(msg *message.Message, o Outcome) {
	if d, ok := msg.Context().Value(deliveryKey{}).(*Delivery); ok && d.Report != nil {
		d.Report(o)
	}
}

type noHandoffKey struct{}

// WithoutHandoff returns ctx telling the retry and DLQ middlewares not to hand
// a failure off but to return it, so the caller keeps the record (DLQ
// reprocessing with stop-on-error uses it).
func WithoutHandoff(ctx context.Context) context.Context {
	return context.WithValue(ctx, noHandoffKey{}, true)
}

// HandoffDisabled reports whether ctx was made by WithoutHandoff.
func HandoffDisabled(ctx context.Context) bool {
	v, _ := ctx.Value(noHandoffKey{}).(bool)
	return v
}
