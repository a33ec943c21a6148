package wire_test

import (
	"errors"
	"fmt"

	"github.com/torix/kafkaevents/wire"
)

// ReasonOf tells the DLQ why a message ends there. An error without a reason
// is retryable; the retry middleware adds retries-exhausted or retry-disabled
// when it gives up.
func ExampleReasonOf() {
	errs := []error{
		errors.New("connection reset"),
		wire.Permanent(errors.New("unknown customer")),
		fmt.Errorf("decode order: %w", wire.Undecodable(errors.New("unexpected EOF"))),
		wire.WithReason(wire.ReasonRetriesExhausted, errors.New("timeout")),
		&wire.PanicError{Value: "nil map"},
	}
	for _, err := range errs {
		reason, ok := wire.ReasonOf(err)
		fmt.Printf("%-40s reason=%q ok=%t retryable=%t\n", err, reason, ok, wire.IsRetryable(err))
	}
	// Output:
	// connection reset                         reason="" ok=false retryable=true
	// unknown customer                         reason="permanent" ok=true retryable=false
	// decode order: unexpected EOF             reason="undecodable" ok=true retryable=false
	// timeout                                  reason="retries-exhausted" ok=true retryable=false
	// panic: nil map                           reason="" ok=false retryable=true
}

// Reasons lists every value that x-dlq-reason takes.
func ExampleReason_Valid() {
	for _, r := range wire.Reasons {
		fmt.Println(r, r.Valid())
	}
	fmt.Println(wire.Reason("timeout").Valid())
	// Output:
	// retries-exhausted true
	// permanent true
	// undecodable true
	// retry-disabled true
	// unroutable true
	// false
}
