package correlation

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

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
	var b [len("corr-") + 10 + len("-") + 20]byte
	id := append(b[:0], "corr-"...)
	r := rand.Uint64()
	for range 10 {
		id = append(id, alphabet[r%36])
		r /= 36
	}
	id = append(id, '-')
	// One allocation (the string) instead of three.
	return string(strconv.AppendInt(id, time.Now().UnixMilli(), 10))
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

// Middleware puts the message's correlation ID (generated when it has none)
// in the message context and stamps it, under Header, on every message the
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

// Ensure returns the correlation ID of msg (FromMessage), or a new one when
// it has none, and puts it in msg's context unless it is there already. It
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
		id = New()
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
