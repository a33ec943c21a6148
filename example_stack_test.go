package kafkaevents_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// New connects to the brokers and works out the topics the stack needs: one
// retry lane per delay of the retry policy, and the DLQ. The router plugin
// creates them when the router starts.
func ExampleNew() {
	broker, err := kafkatest.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID: "billing",
		Brokers:  broker.Addrs(),
	}, kafkaevents.WithLogger(watermill.NopLogger{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()

	for _, t := range stack.Topics() {
		fmt.Println(t.Name, "partitions:", t.Partitions, "retention.ms:", t.Configs["retention.ms"])
	}
	fmt.Println("consumer group:", stack.Config().Consumer.GroupID)
	// Output:
	// billing.retry.1s partitions: 3 retention.ms: 604800000
	// billing.retry.2s partitions: 3 retention.ms: 604800000
	// billing.retry.4s partitions: 3 retention.ms: 604800000
	// billing.dlq partitions: 3 retention.ms: 1209600000
	// billing.dlq.runs partitions: 1 retention.ms: -1
	// consumer group: billing-group
}

// AddHandler registers a handler together with the route its retries and
// reprocessed DLQ records take back to it. Here the first delivery fails, and
// the retry, held in the retry topic billing.retry.100ms for 100 ms, succeeds.
func ExampleStack_AddHandler() {
	broker, err := kafkatest.Start(kafkatest.Topics("invoice.issued"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID:      "billing",
		Brokers:       broker.Addrs(),
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Retry:         kafkaevents.RetryConfig{BaseDelay: 100 * time.Millisecond},
	}, kafkaevents.WithLogger(watermill.NopLogger{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()

	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		fmt.Println(err)
		return
	}
	stack.Install(router)

	type Invoice struct {
		ID string `json:"id"`
	}
	var attempts atomic.Int32
	done := make(chan struct{})
	_, err = stack.AddHandler(router, "invoice.issued", "Billing.recordInvoice",
		kafkaevents.JSON(func(ctx context.Context, inv Invoice) error {
			n := attempts.Add(1)
			if n == 1 {
				fmt.Println("attempt 1: ledger unavailable")
				return errors.New("ledger unavailable")
			}
			fmt.Printf("attempt %d: recorded %s, correlation ID %s\n", n, inv.ID, correlation.FromContext(ctx))
			close(done)
			return nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	_, err = stack.Producer().Send(ctx, kafkaevents.Message{
		Topic: "invoice.issued", Key: "inv-1", Value: Invoice{ID: "inv-1"}, CorrelationID: "corr-example-1",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
		fmt.Println("timed out")
	}
	_ = router.Close()
	fmt.Println("retries scheduled:", stack.RetryStats().Scheduled)
	// Output:
	// attempt 1: ledger unavailable
	// attempt 2: recorded inv-1, correlation ID corr-example-1
	// retries scheduled: 1
}

// A router that already has handlers, added with AddConsumerHandler, gets the
// stack with Install: they only need to consume through the stack's
// subscriber. Here a permanent failure goes to the DLQ without retries.
func ExampleStack_Install() {
	broker, err := kafkatest.Start(kafkatest.Topics("audit"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID:      "auditor",
		Brokers:       broker.Addrs(),
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
	}, kafkaevents.WithLogger(watermill.NopLogger{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()

	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The router's existing handler.
	router.AddConsumerHandler("Audit.store", "audit", stack.Subscriber(), func(msg *message.Message) error {
		if len(msg.Payload) == 0 {
			return wire.Permanent(errors.New("empty audit entry"))
		}
		return nil
	})
	stack.Install(router)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	if _, err := stack.Producer().Send(ctx, kafkaevents.Message{Topic: "audit", Key: "a-1"}); err != nil {
		fmt.Println(err)
		return
	}
	for stack.DLQStats().MessagesStored == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	_ = router.Close()

	page, err := stack.BrowseDLQ(ctx, "audit", 10, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range page.Records {
		fmt.Println(r.Key, r.HandlerID, r.Reason, r.ErrorMessage, "retries:", r.Headers[wire.HeaderRetryCount])
	}
	// Output:
	// a-1 Audit.store permanent empty audit entry retries: 0
}

// JSON adapts a typed function to a Watermill handler. A payload that does
// not decode is marked undecodable: it is not retried and goes to the DLQ
// with that reason.
func ExampleJSON() {
	type Order struct {
		ID     string `json:"orderId"`
		Amount int    `json:"amount"`
	}
	handler := kafkaevents.JSON(func(ctx context.Context, o Order) error {
		fmt.Printf("order %s, amount %d\n", o.ID, o.Amount)
		return nil
	})

	fmt.Println("error:", handler(message.NewMessage("m-1", []byte(`{"orderId":"o-1","amount":42}`))))

	err := handler(message.NewMessage("m-2", []byte(`<order/>`)))
	reason, _ := wire.ReasonOf(err)
	fmt.Println("reason:", reason)
	fmt.Println("error:", err)
	// Output:
	// order o-1, amount 42
	// error: <nil>
	// reason: undecodable
	// error: decode kafkaevents_test.Order: the payload is not JSON (it starts "<order/>"): invalid character '<' looking for beginning of value
}
