package delayedretry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/wire"
)

func ExamplePolicy_Delay() {
	exponential := delayedretry.Policy{Attempts: 6, BaseDelay: time.Second, MaxDelay: 10 * time.Second}
	linear := delayedretry.Policy{Attempts: 6, BaseDelay: time.Second, MaxDelay: 10 * time.Second, Backoff: delayedretry.BackoffLinear}
	for attempt := 1; attempt <= 6; attempt++ {
		fmt.Printf("retry %d: exponential %v, linear %v\n", attempt, exponential.Delay(attempt), linear.Delay(attempt))
	}
	fmt.Println("default policy:", delayedretry.DefaultPolicy.Delays())
	// Output:
	// retry 1: exponential 1s, linear 1s
	// retry 2: exponential 2s, linear 2s
	// retry 3: exponential 4s, linear 3s
	// retry 4: exponential 8s, linear 4s
	// retry 5: exponential 10s, linear 5s
	// retry 6: exponential 10s, linear 6s
	// default policy: [1s 2s 4s]
}

// Permanent marks an error that no retry can fix: the retry middleware gives
// up at once and the DLQ stores the message with reason "permanent".
func ExamplePermanent() {
	errNoCustomer := errors.New("customer does not exist")
	err := fmt.Errorf("charge order o-7: %w", wire.Permanent(errNoCustomer))

	reason, _ := wire.ReasonOf(err)
	fmt.Println("reason:", reason)
	fmt.Println("retryable:", wire.IsRetryable(err))
	fmt.Println("cause kept:", errors.Is(err, errNoCustomer))
	fmt.Println("plain error retryable:", wire.IsRetryable(errors.New("timeout")))
	// Output:
	// reason: permanent
	// retryable: false
	// cause kept: true
	// plain error retryable: true
}

// In lanes mode every distinct delay of the policies in use gets a retry
// topic of its own, so a short delay never waits behind a long one.
func ExampleRetrier_Topics() {
	r, err := delayedretry.New(delayedretry.Config{Sender: printSender{}, TopicPrefix: "orders.retry"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The default policy (1s, 2s, 4s) plus a handler of its own.
	if err := r.SetPolicy("Payments.charge", delayedretry.Policy{Attempts: 3, BaseDelay: 500 * time.Millisecond, Backoff: delayedretry.BackoffLinear}); err != nil {
		fmt.Println(err)
		return
	}
	for _, topic := range r.Topics() {
		fmt.Println(topic)
	}
	// Output:
	// orders.retry.500ms
	// orders.retry.1s
	// orders.retry.1500ms
	// orders.retry.2s
	// orders.retry.4s
}

// The retry middleware turns a failure into a retry record and acknowledges
// the original; once the attempts are used up it returns the error marked
// retries-exhausted, for the DLQ middleware outside it.
func ExampleRetrier_Middleware() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r, err := delayedretry.New(delayedretry.Config{
		Sender:      printSender{},
		TopicPrefix: "orders.retry",
		Now:         func() time.Time { return now },
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	handler := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		return nil, errors.New("inventory service timed out")
	})

	// The router and watermill-kafka describe a delivery in the message
	// context; here it is set by hand.
	msg := message.NewMessage("6f1c0a4e", []byte(`{"orderId":"o-7"}`))
	msg.Metadata.Set(wire.HeaderCorrelationID, "corr-o-7")
	msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "Orders.reserve", Topic: "order.created", Partition: 2, Offset: 41, HasOffset: true,
	}))
	_, err = handler(msg)
	fmt.Println("first delivery returns:", err)

	// The third retry fails too: no attempts left.
	last := message.NewMessage("6f1c0a4e", []byte(`{"orderId":"o-7"}`))
	last.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "Orders.reserve", Topic: "order.created", RetryCount: 3, Source: wire.SourceRetry,
	}))
	_, err = handler(last)
	reason, _ := wire.ReasonOf(err)
	fmt.Println("third retry returns:", err, "/ reason", reason)
	// Output:
	// publish to orders.retry.1s
	//   _watermill_message_uuid: 6f1c0a4e
	//   x-correlation-id: corr-o-7
	//   x-error-message: inventory service timed out
	//   x-failed-at: 2026-03-01T12:00:00.000Z
	//   x-first-failed-at: 2026-03-01T12:00:00.000Z
	//   x-handler-id: Orders.reserve
	//   x-original-offset: 41
	//   x-original-partition: 2
	//   x-original-topic: order.created
	//   x-retry-after: 2026-03-01T12:00:01.000Z
	//   x-retry-count: 1
	// first delivery returns: <nil>
	// third retry returns: inventory service timed out / reason retries-exhausted
}

// printSender stands in for the kafkaevents Producer: it prints the record
// instead of publishing it.
type printSender struct{}

func (printSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	fmt.Println("publish to", rec.Topic)
	hs := slices.Clone(rec.Headers)
	slices.SortFunc(hs, func(a, b sarama.RecordHeader) int { return slices.Compare(a.Key, b.Key) })
	for _, h := range hs {
		fmt.Printf("  %s: %s\n", h.Key, h.Value)
	}
	return nil
}
