package kafkaevents

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// NewSlogLogger returns a Watermill logger that writes to l and, beyond
// watermill.NewSlogLogger's levels, has a warning level: the retry and DLQ
// middlewares log each retry scheduled and each record dead-lettered with
// it, at slog.LevelWarn. The stack's default logger is one of these.
//
// A logger given [WithLogger] that is no [WarnLogger] gets those lines at
// INFO.
func NewSlogLogger(l *slog.Logger) WarnLogger {
	return slogLogger{LoggerAdapter: watermill.NewSlogLogger(l), slog: l}
}

// WarnLogger is a Watermill logger with a warning level, which
// watermill.LoggerAdapter lacks. A logger that wraps one keeps the level by
// being one too (by embedding it, and returning a WarnLogger from With).
type WarnLogger interface {
	watermill.LoggerAdapter
	Warn(msg string, fields watermill.LogFields)
}

// slogLogger is watermill's slog adapter with Warn.
type slogLogger struct {
	watermill.LoggerAdapter
	slog *slog.Logger
}

// Warn writes msg at slog.LevelWarn with fields as attributes.
func (s slogLogger) Warn(msg string, fields watermill.LogFields) {
	if !s.slog.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	s.slog.Log(context.Background(), slog.LevelWarn, msg, attrs(fields)...)
}

// With returns the logger with fields added to every line, Warn's included.
func (s slogLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return NewSlogLogger(s.slog.With(attrs(fields)...))
}

// attrs returns fields as the key-value pairs slog takes.
func attrs(fields watermill.LogFields) []any {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return args
}
