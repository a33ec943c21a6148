package middleware

import (
	"errors"
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/wire"
)

// RecoverPanics is a middleware that turns a handler panic into a *wire.PanicError, so
// the retry and DLQ middlewares treat it as a failure with the panic text as
// the error message. Place it innermost (closest to the handler).
func RecoverPanics(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (msgs []*message.Message, err error) {
		defer recoverPanic(&msgs, &err)
		return h(msg)
	}
}

// RejectUndecodable is a middleware that fails a message marked by the
// library's unmarshaler (wire.HeaderUnmarshalError) with a wire.Undecodable error
// without calling the handler, so it goes to the DLQ with reason
// undecodable. Place it innermost.
func RejectUndecodable(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if err := undecodable(msg); err != nil {
			return nil, err
		}
		return h(msg)
	}
}

// undecodable returns the Undecodable error of a message the library's
// unmarshaler marked with wire.HeaderUnmarshalError, or nil.
func undecodable(msg *message.Message) error {
	if cause := msg.Metadata[wire.HeaderUnmarshalError]; cause != "" {
		return rejected(cause)
	}
	return nil
}

// rejected is the Undecodable error for cause; not inlined, so that
// building it does not widen the frame of Guard, live while the handler
// runs.
//
//go:noinline
func rejected(cause string) error {
	return wire.Undecodable(errors.New(cause))
}

// Guard is RejectUndecodable and RecoverPanics in one middleware: a message
// marked by the library's unmarshaler fails as Undecodable without reaching
// the handler, and a handler panic becomes a *wire.PanicError. It is what the
// stack installs innermost; one frame instead of two keeps the goroutine
// Watermill starts for each message within its initial stack.
func Guard(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (msgs []*message.Message, err error) {
		if err := undecodable(msg); err != nil {
			return nil, err
		}
		defer recoverPanic(&msgs, &err)
		return h(msg)
	}
}

// recoverPanic, deferred, turns a panic into a *wire.PanicError result. It is a
// function of its own, not a closure, so that the frame of Guard stays
// small while the handler runs.
//
//nolint:gocritic // ptrToRefParam: err is the deferring function's result.
func recoverPanic(msgs *[]*message.Message, err *error) {
	if r := recover(); r != nil {
		*msgs = nil
		*err = &wire.PanicError{Value: r, Stack: debug.Stack()}
	}
}
