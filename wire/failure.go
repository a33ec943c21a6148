package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Failure is an error that carries the reason it ends in the DLQ. The retry
// middleware returns a Failure for every error it gives up on; the DLQ
// middleware reads the reason with ReasonOf.
type Failure struct {
	Reason Reason
	Err    error
}

// Error returns the wrapped error's text.
func (f *Failure) Error() string {
	if f.Err == nil {
		return string(f.Reason)
	}
	return f.Err.Error()
}

// Unwrap returns the wrapped error.
func (f *Failure) Unwrap() error { return f.Err }

// WithReason wraps err in a Failure with the given reason. A nil err stays nil.
func WithReason(reason Reason, err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Reason: reason, Err: err}
}

// Permanent marks err as permanent: the retry middleware does not retry it and
// the DLQ stores it with ReasonPermanent. A nil err stays nil.
func Permanent(err error) error { return WithReason(ReasonPermanent, err) }

// Undecodable marks err as a payload that cannot be decoded: no retries, DLQ
// reason ReasonUndecodable. A nil err stays nil.
func Undecodable(err error) error { return WithReason(ReasonUndecodable, err) }

// ReasonOf returns the reason of the outermost Failure in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason, true
	}
	return "", false
}

// IsRetryable reports whether err may be retried: it is not nil and carries no
// reason (permanent, undecodable or any other).
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	_, final := ReasonOf(err)
	return !final
}

// PanicError is the error a recovered handler panic becomes. It is retryable.
type PanicError struct {
	Value any
	Stack []byte
}

// Error returns "panic: " followed by the panic value.
func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// ErrHandoff wraps the error of a retry or DLQ record that the broker did not
// acknowledge. Middlewares pass such errors through untouched, so Watermill
// redelivers the original message instead of storing it anywhere.
var ErrHandoff = errors.New("kafkaevents: hand-off not acknowledged")

// PanicStackLines is how many lines of a panic's stack the retry and DLQ
// log lines carry (PanicStack).
const PanicStackLines = 20

// PanicStack returns the first lines of the stack of the panic err wraps
// (a *PanicError), at most maxLines lines and MaxErrorMessageLen bytes, or
// "" when err is not a panic. The goroutine header and the frames of the
// recovery itself are left out, so that the handler's frame comes first.
func PanicStack(err error, maxLines int) string {
	var p *PanicError
	if !errors.As(err, &p) || len(p.Stack) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(p.Stack)), "\n")
	// debug.Stack starts with "goroutine N [running]:", then pairs of lines
	// (function, file:line) from debug.Stack itself, through the deferred
	// recovery and runtime.gopanic, to the function that panicked.
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") || strings.HasPrefix(l, "runtime.gopanic(") {
			lines = lines[min(i+2, len(lines)):]
			break
		}
	}
	if len(lines) > maxLines {
		lines = lines[:maxLines]
	}
	return TruncateError(strings.Join(lines, "\n"))
}
