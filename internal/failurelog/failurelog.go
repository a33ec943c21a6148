// Package failurelog writes the log lines the retry and DLQ middlewares
// write about a failed record: at WARN where the logger has that level, and
// the one line of a record given up at a stop.
package failurelog

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/lograte"
	"github.com/torix/kafkaevents/wire"
)

// Warner is a logger with a warning level. watermill.LoggerAdapter has
// none, so a logger that also has this method gets the lines of Warn at
// that level.
type Warner interface {
	Warn(msg string, fields watermill.LogFields)
}

// Warn writes msg at WARN when l is a [Warner], and at INFO otherwise.
func Warn(l watermill.LoggerAdapter, msg string, fields watermill.LogFields) {
	if w, ok := l.(Warner); ok {
		w.Warn(msg, fields)
		return
	}
	l.Info(msg, fields)
}

// Abandoned reports whether ctx, a message's context when it reached a
// hand-off middleware, was cancelled: the consume layer gave the record up
// (its subscription stopped, or a rebalance took its partition). A deadline
// that passed is not a stop: a timeout is a failure.
func Abandoned(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// loggedKey marks a message's context once LogAbandoned wrote its line.
type loggedKey struct{}

// LogAbandoned writes the INFO line of msg, whose handler returned err after
// the record was given up (see [Abandoned]), at most as often as lim allows.
// It writes one line per message: it marks the message's context, so that
// the DLQ middleware, which sees msg after the retry middleware inside it
// did, writes none.
//
//go:noinline
func LogAbandoned(l watermill.LoggerAdapter, lim *lograte.Limiter, msg *message.Message, err error) {
	if msg.Context().Value(loggedKey{}) != nil {
		return
	}
	msg.SetContext(context.WithValue(msg.Context(), loggedKey{}, true))
	ok, suppressed := lim.Allow()
	if !ok {
		return
	}
	d := wire.DeliveryOf(msg)
	fields := watermill.LogFields{
		"handler_id": d.HandlerID, "topic": d.Topic, "error": wire.TruncateError(err.Error()),
		"correlation_id": correlation.FromMessage(msg),
	}
	if d.HasOffset {
		fields["partition"], fields["offset"] = d.Partition, d.Offset
	}
	if suppressed > 0 {
		fields["lines_suppressed"] = suppressed
	}
	l.Info("Stopping: handler returned after its context was cancelled; the record is left uncommitted and will be delivered again", fields)
}
