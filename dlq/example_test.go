package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// The DLQ middleware stores what escapes the handler (and the retry
// middleware inside it) with headers that say where the record came from and
// why, and acknowledges the original once the broker has the DLQ record.
func ExampleQueue_Middleware() {
	now := time.Date(2026, 3, 1, 12, 0, 7, 0, time.UTC)
	q, err := dlq.New(dlq.Config{Sender: printSender{}, Topic: "orders.dlq", Now: func() time.Time { return now }}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	handler := q.Middleware(func(*message.Message) ([]*message.Message, error) {
		return nil, wire.WithReason(wire.ReasonRetriesExhausted, errors.New("payment provider down"))
	})

	msg := message.NewMessage("6f1c0a4e", []byte(`{"orderId":"o-7"}`))
	msg.Metadata.Set(wire.HeaderCorrelationID, "corr-o-7")
	msg.Metadata.Set(wire.HeaderFirstFailedAt, "2026-03-01T12:00:00.000Z")
	msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "Payments.charge", Topic: "order.created", Partition: 1, Offset: 17, HasOffset: true, RetryCount: 3,
	}))
	_, err = handler(msg)
	fmt.Println("returns:", err)
	// Output:
	// publish to orders.dlq
	//   _watermill_message_uuid: 6f1c0a4e
	//   x-correlation-id: corr-o-7
	//   x-dlq-reason: retries-exhausted
	//   x-dlq-stored-at: 2026-03-01T12:00:07.000Z
	//   x-error-message: payment provider down
	//   x-failed-at: 2026-03-01T12:00:07.000Z
	//   x-first-failed-at: 2026-03-01T12:00:00.000Z
	//   x-handler-id: Payments.charge
	//   x-original-offset: 17
	//   x-original-partition: 1
	//   x-original-topic: order.created
	//   x-retry-count: 3
	// returns: <nil>
}

// A reprocessing run replays the DLQ records of one original topic to the
// handler named in each record. Here a handler without retries fails while
// its dependency is down, the record goes to the DLQ, and once the dependency
// is back a run reprocesses it. Stack.StartReprocess (and POST
// /kafka/dlq/reprocess) start the same run in the background.
func ExampleReprocessOptions() {
	broker, err := kafkatest.Start(kafkatest.Topics("payments"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID:      "payments",
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
	stack.Install(router)

	var down atomic.Bool
	down.Store(true)
	var charged atomic.Int32
	_, err = stack.AddHandler(router, "payments", "Payments.charge", func(msg *message.Message) error {
		if down.Load() {
			return errors.New("payment provider down")
		}
		charged.Add(1)
		return nil
	}, kafkaevents.WithoutRetry())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	defer func() { _ = router.Close() }()

	if _, err := stack.Producer().Send(ctx, kafkaevents.Message{Topic: "payments", Key: "pay-1", Value: `{"amount":42}`}); err != nil {
		fmt.Println(err)
		return
	}
	for stack.DLQStats().MessagesStored == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("stored in the DLQ:", stack.DLQStats().ByReason[string(wire.ReasonRetryDisabled)], "record, reason retry-disabled")

	down.Store(false)
	p, err := stack.Reprocessor().Reprocess(ctx, dlq.ReprocessOptions{
		Topic:       "payments",
		BatchSize:   50,               // commit the run's offsets every 50 records
		Timeout:     30 * time.Second, // stop the run after 30s
		StopOnError: true,             // stop at the first record that fails again
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run:", p.State, "group:", p.GroupID, "reprocessed:", p.Reprocessed, "failed:", p.Failed)
	fmt.Println("charged:", charged.Load())
	// Output:
	// stored in the DLQ: 1 record, reason retry-disabled
	// run: completed group: payments.dlq.reprocess.payments reprocessed: 1 failed: 0
	// charged: 1
}

// ReprocessRecord replays one DLQ record, found here with Search, the way a
// run of its topic would: it is handed to its handler in this service's
// consumer group and never republished, so other consumer groups of the
// topic see nothing. POST /kafka/dlq/records/{partition}/{offset}/reprocess
// and the console's "Reprocess this record" call it.
func ExampleReprocessor_ReprocessRecord() {
	broker, err := kafkatest.Start(kafkatest.Topics("refunds"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID:      "refunds",
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
	stack.Install(router)

	var down atomic.Bool
	down.Store(true)
	var refunded atomic.Int32
	_, err = stack.AddHandler(router, "refunds", "Refunds.pay", func(msg *message.Message) error {
		if down.Load() {
			return errors.New("bank down")
		}
		refunded.Add(1)
		return nil
	}, kafkaevents.WithoutRetry())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	defer func() { _ = router.Close() }()

	for _, key := range []string{"ref-1", "ref-2"} {
		if _, err := stack.Producer().Send(ctx, kafkaevents.Message{Topic: "refunds", Key: key, Value: `{"amount":5}`}); err != nil {
			fmt.Println(err)
			return
		}
	}
	for stack.DLQStats().MessagesStored < 2 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	page, err := stack.SearchDLQ(ctx, dlq.Query{Topic: "refunds", HandlerID: "Refunds.pay", Limit: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	i := slices.IndexFunc(page.Records, func(r dlq.BrowsedRecord) bool { return r.Key == "ref-2" })
	fmt.Println("in the DLQ:", page.Total, "records")

	down.Store(false)
	rec := page.Records[i]
	res, err := stack.Reprocessor().ReprocessRecord(ctx, rec.Partition, rec.Offset)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ref-2:", res.Outcome, "by", res.HandlerID, "of", res.Topic)
	fmt.Println("refunded:", refunded.Load())
	// Output:
	// in the DLQ: 2 records
	// ref-2: reprocessed by Refunds.pay of refunds
	// refunded: 1
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
