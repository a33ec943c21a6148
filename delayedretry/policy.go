package delayedretry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Backoff is how the delay grows with the attempt number.
type Backoff string

const (
	// BackoffExponential: BaseDelay · 2^(attempt-1), capped at MaxDelay.
	BackoffExponential Backoff = "exponential"
	// BackoffLinear: BaseDelay · attempt, capped at MaxDelay.
	BackoffLinear Backoff = "linear"
)

// ErrInvalidPolicy is wrapped by every error of Policy.Validate.
var ErrInvalidPolicy = errors.New("delayedretry: invalid policy")

// Policy says how often and how late a handler's failures are retried.
type Policy struct {
	// Disabled turns retries off: a failure goes straight to the DLQ with
	// reason retry-disabled.
	Disabled bool
	// Attempts is the number of retries after the first delivery. Zero with
	// Disabled false means no retries either (reason retries-exhausted).
	Attempts int
	// BaseDelay is the delay of the first retry. Required when Attempts > 0.
	BaseDelay time.Duration
	// MaxDelay caps every delay. Optional. Default: no cap.
	MaxDelay time.Duration
	// Backoff is BackoffExponential or BackoffLinear. Optional. Default:
	// exponential.
	Backoff Backoff
	// Jitter in [0,1] adds a random extra delay of up to Jitter · delay (still
	// capped at MaxDelay). Jitter only ever delays: a record is never due
	// before its nominal delay. Optional. Default: 0.
	Jitter float64
	// KeepKeyOrder keeps the order of each key's records across the
	// hand-offs: when a record of key K is handed to a retry lane, K is
	// parked on its partition, and the later records of K are set aside
	// (stored in the service's key-order state topic, {service}.parked)
	// until it is handled; then they are delivered in their offset order,
	// before any newer record of K. See docs/key-order.md. It works for a
	// sequential handler and for a concurrent one that orders by key;
	// records without a key are not affected. Optional. Default: false.
	KeepKeyOrder bool
	// DeadLetteredKey says what becomes of a parked key whose head is
	// dead-lettered (retries exhausted, a permanent or undecodable error):
	// KeyHeld (the default) keeps it parked until the head is reprocessed
	// from the DLQ or an operator releases the key; KeyReleased lets the
	// records set aside behind it go on, and the DLQ record says that it
	// broke the key's order. Only read with KeepKeyOrder.
	DeadLetteredKey KeyAction
}

// KeyAction is what becomes of a parked key whose head is dead-lettered
// (Policy.DeadLetteredKey).
type KeyAction string

const (
	// KeyHeld keeps the key parked behind its dead-lettered head.
	KeyHeld KeyAction = "hold"
	// KeyReleased lets the key go on without its dead-lettered head.
	KeyReleased KeyAction = "release"
)

// DefaultPolicy is 3 attempts, exponential from 1s, capped at 30s, no jitter.
var DefaultPolicy = Policy{Attempts: 3, BaseDelay: time.Second, MaxDelay: 30 * time.Second, Backoff: BackoffExponential}

// Validate returns an error wrapping ErrInvalidPolicy that names each bad field.
func (p Policy) Validate() error {
	var errs []error
	if p.Attempts < 0 {
		errs = append(errs, fmt.Errorf("field Attempts = %d: must be >= 0", p.Attempts))
	}
	if p.Attempts > 0 && p.BaseDelay <= 0 {
		errs = append(errs, fmt.Errorf("field BaseDelay = %s: must be > 0", p.BaseDelay))
	}
	if p.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("field MaxDelay = %s: must be >= 0", p.MaxDelay))
	}
	if p.MaxDelay > 0 && p.BaseDelay > p.MaxDelay {
		errs = append(errs, fmt.Errorf("field BaseDelay = %s exceeds MaxDelay = %s", p.BaseDelay, p.MaxDelay))
	}
	switch Backoff(strings.ToLower(string(p.Backoff))) {
	case "", BackoffExponential, BackoffLinear:
	default:
		errs = append(errs, fmt.Errorf("field Backoff = %q: want %q or %q", p.Backoff, BackoffExponential, BackoffLinear))
	}
	switch KeyAction(strings.ToLower(string(p.DeadLetteredKey))) {
	case "", KeyHeld, KeyReleased:
	default:
		errs = append(errs, fmt.Errorf("field DeadLetteredKey = %q: want %q or %q", p.DeadLetteredKey, KeyHeld, KeyReleased))
	}
	if p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter) {
		errs = append(errs, fmt.Errorf("field Jitter = %v: want a fraction in [0,1]", p.Jitter))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidPolicy, errors.Join(errs...))
}

// Delay returns the nominal delay before retry number attempt (1 for the
// first retry), without jitter. It is computed in floating point and capped
// at MaxDelay (and at the largest time.Duration), so no attempt number
// overflows or truncates.
func (p Policy) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	base := float64(p.BaseDelay)
	var d float64
	if Backoff(strings.ToLower(string(p.Backoff))) == BackoffLinear {
		d = base * float64(attempt)
	} else {
		d = base * math.Pow(2, float64(attempt-1))
	}
	return p.capped(d)
}

// JitteredDelay returns Delay(attempt) plus a random share of up to Jitter of
// it, capped at MaxDelay. It is never less than Delay(attempt).
func (p Policy) JitteredDelay(attempt int) time.Duration {
	d := p.Delay(attempt)
	if p.Jitter <= 0 {
		return d
	}
	return p.capped(float64(d) * (1 + p.Jitter*rand.Float64()))
}

func (p Policy) capped(d float64) time.Duration {
	if p.MaxDelay > 0 && d > float64(p.MaxDelay) {
		return p.MaxDelay
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// ReleasesDeadLettered reports whether a dead-lettered head releases its
// key (DeadLetteredKey is KeyReleased).
func (p Policy) ReleasesDeadLettered() bool {
	return KeyAction(strings.ToLower(string(p.DeadLetteredKey))) == KeyReleased
}

// Delays returns the nominal delays of attempts 1..Attempts.
func (p Policy) Delays() []time.Duration {
	if p.Disabled {
		return nil
	}
	out := make([]time.Duration, 0, p.Attempts)
	for k := 1; k <= p.Attempts; k++ {
		out = append(out, p.Delay(k))
	}
	return out
}
