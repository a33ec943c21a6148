package middleware_test

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/middleware"
)

// ReasonOf tells the DLQ why a message ends there. An error without a reason
// is retryable; the retry middleware adds retries-exhausted or retry-disabled
// when it gives up.
func ExampleReasonOf() {
	errs := []error{
		errors.New("connection reset"),
		middleware.Permanent(errors.New("unknown customer")),
		fmt.Errorf("decode order: %w", middleware.Undecodable(errors.New("unexpected EOF"))),
		middleware.WithReason(middleware.ReasonRetriesExhausted, errors.New("timeout")),
		&middleware.PanicError{Value: "nil map"},
	}
	for _, err := range errs {
		reason, ok := middleware.ReasonOf(err)
		fmt.Printf("%-40s reason=%q ok=%t retryable=%t\n", err, reason, ok, middleware.IsRetryable(err))
	}
	// Output:
	// connection reset                         reason="" ok=false retryable=true
	// unknown customer                         reason="permanent" ok=true retryable=false
	// decode order: unexpected EOF             reason="undecodable" ok=true retryable=false
	// timeout                                  reason="retries-exhausted" ok=true retryable=false
	// panic: nil map                           reason="" ok=false retryable=true
}

func ExampleRecoverer() {
	handler := middleware.Recoverer(func(*message.Message) ([]*message.Message, error) {
		panic("inventory cache not initialised")
	})
	_, err := handler(message.NewMessage("1", nil))
	var pe *middleware.PanicError
	fmt.Println(errors.As(err, &pe), middleware.IsRetryable(err))
	fmt.Println(err)
	// Output:
	// true true
	// panic: inventory cache not initialised
}

// Reasons lists every value that x-dlq-reason takes.
func ExampleReason_Valid() {
	for _, r := range middleware.Reasons {
		fmt.Println(r, r.Valid())
	}
	fmt.Println(middleware.Reason("timeout").Valid())
	// Output:
	// retries-exhausted true
	// permanent true
	// undecodable true
	// retry-disabled true
	// unroutable true
	// false
}
