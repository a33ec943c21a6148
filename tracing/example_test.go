package tracing_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents/tracing"
	"github.com/torix/kafkaevents/wire"
)

// exampleTracer returns a Tracer on an SDK provider that keeps the ended spans
// in memory. An application would configure an exporter instead, and could
// leave Config empty to use the OpenTelemetry globals.
func exampleTracer() (*tracing.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	return tracing.New(tracing.Config{
		TracerProvider: tp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		ConsumerGroup:  "billing",
	}), exp
}

func ExampleTracer_Middleware() {
	tr, exp := exampleTracer()

	// On a router: router.AddMiddleware(tr.Middleware). Here the middleware
	// wraps a handler directly, and the message is built by hand with the
	// headers a traced producer would have sent.
	handler := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		span := trace.SpanFromContext(msg.Context())
		fmt.Println("handler runs in a recording span:", span.IsRecording())
		return nil, nil
	})
	msg := message.NewMessage("6f1c0a4e", []byte(`{"order":7}`))
	msg.Metadata.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "invoice", Topic: "orders", Partition: 0, Offset: 12, HasOffset: true,
	}))
	if _, err := handler(msg); err != nil {
		fmt.Println(err)
	}

	for _, s := range exp.GetSpans() {
		fmt.Println(s.Name, s.SpanKind, "trace", s.SpanContext.TraceID(), "parent", s.Parent.SpanID())
	}
	// Output:
	// handler runs in a recording span: true
	// process orders consumer trace 4bf92f3577b34da6a3ce929d0e0e4736 parent 00f067aa0ba902b7
}

func ExampleTracer_InSpan() {
	tr, exp := exampleTracer()

	err := tr.InSpan(context.Background(), "charge card", func(ctx context.Context) error {
		return tr.InSpan(ctx, "call payment provider", func(context.Context) error {
			return errors.New("card declined")
		}, trace.WithSpanKind(trace.SpanKindClient))
	})
	fmt.Println("error:", err)

	for _, s := range exp.GetSpans() {
		fmt.Println(s.Name, s.SpanKind, s.Status.Code)
	}
	// Output:
	// error: card declined
	// call payment provider client Error
	// charge card internal Error
}

func ExampleTracer_StartSend() {
	tr, exp := exampleTracer()

	rec := &sarama.ProducerMessage{Topic: "invoices", Key: sarama.StringEncoder("order-7"), Value: sarama.StringEncoder(`{}`)}
	_, end := tr.StartSend(context.Background(), rec)
	// ... send rec with a sarama.SyncProducer, which sets rec.Partition and
	// rec.Offset on success ...
	rec.Partition, rec.Offset = 2, 318
	end(rec.Partition, rec.Offset, nil)

	for _, h := range rec.Headers {
		fmt.Println("header:", string(h.Key))
	}
	for _, s := range exp.GetSpans() {
		fmt.Println(s.Name, s.SpanKind)
	}
	// Output:
	// header: traceparent
	// send invoices producer
}

func ExampleTracer_StartDLQ() {
	tr, exp := exampleTracer()

	_, span := tr.StartDLQ(context.Background(), tracing.DLQSpan{
		HandlerID: "invoice", Topic: "orders", Reason: string(wire.ReasonRetriesExhausted),
		RetryCount: 3, Err: errors.New("upstream timeout"),
	})
	// ... publish the DLQ record; on failure: tracing.MarkFailed(span, err) ...
	span.End()

	for _, s := range exp.GetSpans() {
		fmt.Println(s.Name, s.SpanKind, s.Status.Code, s.Events[0].Name)
	}
	// Output:
	// dlq_store orders internal Unset exception
}
