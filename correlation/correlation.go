package correlation

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/wire"
)

// Header is the record header that carries the correlation ID.
const Header = wire.HeaderCorrelationID

// WatermillMetadataKey is the metadata key of Watermill's own CorrelationID
// middleware; it is accepted as a fallback when Header is absent.
const WatermillMetadataKey = "correlation_id"

// MaxLen bounds an accepted correlation ID; a longer incoming value is
// replaced by a generated one so a corrupt header cannot grow every record
// derived from it.
const MaxLen = 256

type ctxKey struct{}

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// New returns a new correlation ID: "corr-", ten random base-36 characters,
// "-" and the current Unix time in milliseconds.
func New() string {
	return format(rand.Uint64(), time.Now().UnixMilli())
}

// FromRecord returns the correlation ID of a record that carries none,
// derived from the record itself: "corr-", ten base-36 characters of a hash
// of its topic, partition and offset, "-" and its timestamp in Unix
// milliseconds (0 when it has none). A redelivery of the record (after a
// crash or a rebalance) gets the same ID, so its log lines, retry and DLQ
// records share it with the first delivery's.
func FromRecord(topic string, partition int32, offset int64, timestamp time.Time) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(topic))
	var b [20]byte
	_, _ = h.Write(strconv.AppendInt(append(strconv.AppendInt(b[:0], int64(partition), 10), '/'), offset, 10))
	ms := int64(0)
	if !timestamp.IsZero() && timestamp.Unix() > 0 {
		ms = timestamp.UnixMilli()
	}
	return format(h.Sum64(), ms)
}

// format returns "corr-", ten base-36 characters of r, "-" and ms.
func format(r uint64, ms int64) string {
	var b [len("corr-") + 10 + len("-") + 20]byte
	id := append(b[:0], "corr-"...)
	for range 10 {
		id = append(id, alphabet[r%36])
		r /= 36
	}
	id = append(id, '-')
	// One allocation (the string) instead of three.
	return string(strconv.AppendInt(id, ms, 10))
}

// ofRecord returns FromRecord of msg when watermill-kafka and the router
// put its topic, partition and offset in its context, or New.
func ofRecord(msg *message.Message) string {
	ctx := msg.Context()
	topic := message.SubscribeTopicFromCtx(ctx)
	p, ok1 := kafka.MessagePartitionFromCtx(ctx)
	off, ok2 := kafka.MessagePartitionOffsetFromCtx(ctx)
	if topic == "" || !ok1 || !ok2 {
		return New()
	}
	ts, _ := kafka.MessageTimestampFromCtx(ctx)
	return FromRecord(topic, p, off, ts)
}

// WithID returns ctx carrying id. An empty id returns ctx unchanged.
func WithID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the correlation ID in ctx, or "" when there is none.
func FromContext(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// FromMetadata returns the ID in md's Header, else in WatermillMetadataKey,
// else "". Values longer than MaxLen are ignored.
func FromMetadata(md message.Metadata) string {
	for _, k := range [...]string{Header, WatermillMetadataKey} {
		if v := md.Get(k); v != "" && len(v) <= MaxLen {
			return v
		}
	}
	return ""
}

// FromMessage returns the ID of msg: from its context, else from its metadata,
// else "".
func FromMessage(msg *message.Message) string {
	if id := FromContext(msg.Context()); id != "" {
		return id
	}
	return FromMetadata(msg.Metadata)
}

// Resolve picks the correlation ID for something about to be published: the
// explicit id if not empty, else the one in md, else the one in ctx, else a
// new one.
func Resolve(ctx context.Context, explicit string, md message.Metadata) string {
	if explicit != "" {
		return explicit
	}
	if id := FromMetadata(md); id != "" {
		return id
	}
	if id := FromContext(ctx); id != "" {
		return id
	}
	return New()
}

// Middleware puts the message's correlation ID (when it has none, derived
// from the record it came from, see FromRecord, or else generated) in the
// message context and stamps it, under Header, on every message the
// handler returns that has none. It does not change the incoming message's
// metadata.
func Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := Ensure(msg)
		out, err := h(msg)
		Stamp(out, id)
		return out, err
	}
}

// Ensure returns the correlation ID of msg (FromMessage), or when it has
// none one derived from its record (FromRecord, for a message consumed from
// Kafka) or a new one, and puts it in msg's context unless it is there already. It
// is Middleware's work before the handler, for middlewares that do it in a
// frame of their own.
//
// Ensure and Stamp are not inlined so that the frame of Middleware, live
// while the handler runs, stays small: Watermill runs each message in a new
// goroutine whose stack grows by copying.
//
//go:noinline
func Ensure(msg *message.Message) string {
	ctx := msg.Context()
	if id := FromContext(ctx); id != "" {
		return id
	}
	id := FromMetadata(msg.Metadata)
	if id == "" {
		id = ofRecord(msg)
	}
	msg.SetContext(WithID(ctx, id))
	return id
}

// Stamp sets Header to id on the messages of out that have none: Middleware's
// work after the handler.
//
//go:noinline
func Stamp(out []*message.Message, id string) {
	for _, m := range out {
		if m.Metadata == nil {
			m.Metadata = message.Metadata{}
		}
		if m.Metadata.Get(Header) == "" {
			m.Metadata.Set(Header, id)
		}
	}
}
