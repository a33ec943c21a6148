package kafkaevents

// The benchmarks are in the package itself (not kafkaevents_test) to reach
// the metrics middleware, which is unexported (Stack.measure).

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/embedded"
	"github.com/torix/kafkaevents/middleware"
)

// benchDelivery builds a stack on the embedded broker and returns it with a
// message exactly as a router delivers it: consumed by the watermill-kafka
// subscriber from a record written by the stack's producer (a key, a 1 KiB
// payload, an x-correlation-id header) and handed to a handler by a Watermill
// router, with the context both of them built (handler name, topic,
// partition, offset, key, timestamp). The message's context is reset before
// each call, as each delivery comes with its own.
func benchDelivery(b *testing.B, tp trace.TracerProvider, opts ...Option) (*Stack, *message.Message, context.Context) {
	b.Helper()
	broker := embedded.New(b)
	cfg := Config{
		Brokers: broker.Addrs(), ServiceName: "bench", LogLevel: "error",
		Subscriptions: SubscriptionConfig{FromBeginning: Bool(true)},
		Consumer:      ConsumerConfig{MaxWaitTime: 50 * time.Millisecond},
	}
	opts = append([]Option{WithLogger(watermill.NopLogger{}), WithTracerProvider(tp)}, opts...)
	s, err := New(cfg, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Producer().Send(ctx, Message{Topic: "orders", Key: "order-1", Value: []byte(`{"orderId":"order-1","note":"` + strings.Repeat("x", 990) + `"}`)}); err != nil {
		b.Fatal(err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan *message.Message, 1)
	r.AddConsumerHandler("Orders.handleOrderCreated", "orders", s.Subscriber(), func(msg *message.Message) error {
		select {
		case got <- msg:
		default:
		}
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	// The router runs until the benchmark ends: closing it would make the
	// subscription drain, and the stack refuse the message.
	b.Cleanup(func() { _ = r.Close() })
	select {
	case msg := <-got:
		return s, msg, msg.Context()
	case <-ctx.Done():
		b.Fatal("no delivery within 30s")
	}
	return nil, nil, nil
}

func noopHandler(*message.Message) ([]*message.Message, error) { return nil, nil }

// BenchmarkMiddlewares measures each middleware of the stack, and the whole
// chain of Stack.Middlewares, on the success path of a router delivery with a
// no-op tracer provider. The chain/* cases in a fresh goroutine per message
// include what the router pays for it too: Watermill handles every message in
// a goroutine of its own, whose stack grows while the chain runs.
func BenchmarkMiddlewares(b *testing.B) {
	s, msg, ctx := benchDelivery(b, noop.NewTracerProvider())
	cases := []struct {
		name string
		mw   message.HandlerMiddleware
	}{
		{"correlation", correlation.Middleware},
		{"tracing-noop", s.Tracer().Middleware},
		{"dlq", s.Queue().Middleware},
		{"retry", s.Retrier().Middleware},
		{"metrics", s.measure},
		{"recoverer", middleware.RecoverPanics},
		{"reject-undecodable", middleware.RejectUndecodable},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			benchHandler(ctx, b, c.mw(noopHandler), msg)
		})
	}
	b.Run("chain", func(b *testing.B) {
		benchHandler(ctx, b, chain(s.Middlewares(), noopHandler), msg)
	})
	b.Run("bare/fresh-goroutine", func(b *testing.B) {
		benchGoroutines(ctx, b, noopHandler, msg)
	})
	b.Run("chain/fresh-goroutine", func(b *testing.B) {
		benchGoroutines(ctx, b, chain(s.Middlewares(), noopHandler), msg)
	})
}

// BenchmarkMiddlewaresOTelSDK is the chain with the OpenTelemetry SDK
// sampling every span into a batcher whose exporter discards them.
func BenchmarkMiddlewaresOTelSDK(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	s, msg, ctx := benchDelivery(b, tp, WithPropagator(prop))
	b.Run("tracing", func(b *testing.B) {
		benchHandler(ctx, b, s.Tracer().Middleware(noopHandler), msg)
	})
	b.Run("chain", func(b *testing.B) {
		benchHandler(ctx, b, chain(s.Middlewares(), noopHandler), msg)
	})
}

// chain applies mws as the router does: the first is the outermost.
func chain(mws []message.HandlerMiddleware, h message.HandlerFunc) message.HandlerFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

func benchHandler(ctx context.Context, b *testing.B, h message.HandlerFunc, msg *message.Message) {
	b.ReportAllocs()
	for b.Loop() {
		msg.SetContext(ctx)
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGoroutines(ctx context.Context, b *testing.B, h message.HandlerFunc, msg *message.Message) {
	var wg sync.WaitGroup
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg.SetContext(ctx)
			if _, err := h(msg); err != nil {
				b.Error(err)
			}
		}()
		wg.Wait()
	}
}
