// Command existing-router shows how a service that already runs a Watermill
// router on Kafka adopts kafkaevents without rewriting what it has.
//
// The router keeps its own middlewares and its handler added with
// router.AddConsumerHandler (it only switches to the stack's subscriber).
// stack.Install puts delayed retries, the DLQ, correlation IDs, tracing and
// metrics around every handler of the router, the old one included, and a new
// handler is registered with stack.AddHandler.
//
// With KAFKA_BROKERS unset it starts an embedded broker in process; with it
// set it uses that Kafka, and every KAFKA_* variable of the library applies
// (KAFKA_CLIENT_ID defaults to "billing"). At start it publishes a few sample
// events: one invoice fails once and is retried through a retry topic, one
// shipment is rejected for good and goes to the DLQ. It runs until
// interrupted.
//
//	go run ./examples/existing-router
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// Topics and handler IDs of the example.
const (
	TopicInvoiceIssued     = "invoice.issued"
	TopicShipmentRequested = "shipment.requested"

	// HandlerLedger is the handler the service had before kafkaevents.
	HandlerLedger = "Ledger.record"
	// HandlerShipping is the handler added with stack.AddHandler.
	HandlerShipping = "Shipping.handleShipmentRequested"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.LookupEnv, logger, func(*App) {
		logger.Info("sample events published; press Ctrl-C to stop")
	})
	stop()
	if err != nil {
		// Plain lines, not a log record: a configuration error names one
		// variable per line, which a log record would quote into one.
		fmt.Fprintln(os.Stderr, "existing-router failed:", err)
		os.Exit(1)
	}
}

// App is the running example, handed to the started callback of run.
type App struct {
	Stack    *kafkaevents.Stack
	Router   *message.Router
	Ledger   *Ledger
	Shipping *Shipping
	// RunID is the suffix of the sample event IDs, unique to this run.
	RunID string
}

// Invoice is the payload of invoice.issued.
type Invoice struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
	// Flaky makes the ledger fail the first delivery, to show a retry.
	Flaky bool `json:"flaky,omitempty"`
}

// Shipment is the payload of shipment.requested.
type Shipment struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Ledger is the service's existing handler: a plain Watermill handler
// function, unchanged except that a payload that cannot be decoded is marked
// permanent, so it goes to the DLQ at once instead of being retried.
type Ledger struct{ Deliveries deliveries }

// Record books an invoice.
func (l *Ledger) Record(msg *message.Message) error {
	var inv Invoice
	if err := json.Unmarshal(msg.Payload, &inv); err != nil {
		return wire.Permanent(fmt.Errorf("decode invoice: %w", err))
	}
	attempt := wire.DeliveryOf(msg).RetryCount // 0 first, k for the k-th retry
	l.Deliveries.add(inv.ID, attempt)
	if inv.Flaky && attempt == 0 {
		return fmt.Errorf("invoice %s: ledger database unavailable", inv.ID)
	}
	return nil
}

// Shipping is the new handler, written for kafkaevents.JSON: it gets the
// decoded payload and the message context, which carries the correlation ID
// and the trace.
type Shipping struct{ Deliveries deliveries }

// HandleShipmentRequested ships a shipment; one without an address can never
// succeed, so its error is permanent.
func (s *Shipping) HandleShipmentRequested(ctx context.Context, sh Shipment) error {
	s.Deliveries.add(sh.ID, 0)
	if strings.TrimSpace(sh.Address) == "" {
		return wire.Permanent(fmt.Errorf("shipment %s has no address (correlation %s)", sh.ID, correlation.FromContext(ctx)))
	}
	return nil
}

// run starts the embedded broker when KAFKA_BROKERS is unset, builds the
// router and the stack, publishes the sample events, calls started (if not
// nil) and runs until ctx is done. It closes the router first, then the stack,
// then the broker.
func run(ctx context.Context, lookup func(string) (string, bool), logger *slog.Logger, started func(*App)) error {
	cfg, err := kafkaevents.Config{}.FromLookup(lookup)
	if err != nil {
		return err
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "billing"
	}
	if len(cfg.Brokers) == 0 {
		broker, err := kafkatest.Start(kafkatest.Topics(TopicInvoiceIssued, TopicShipmentRequested))
		if err != nil {
			return err
		}
		defer broker.Close()
		cfg.Brokers = broker.Addrs()
		if cfg.Subscriptions.FromBeginning == nil {
			// A fresh broker: read what was published before the group joined.
			cfg.Subscriptions.FromBeginning = kafkaevents.Bool(true)
		}
		logger.Info("embedded Kafka broker started (set KAFKA_BROKERS to use your own)", "address", strings.Join(cfg.Brokers, ","))
	}

	wlog := kafkaevents.NewSlogLogger(logger)
	stack, err := kafkaevents.NewContext(ctx, cfg, kafkaevents.WithLogger(wlog))
	if err != nil {
		return err
	}
	defer func() {
		if err := stack.Close(); err != nil {
			logger.Error("closing the stack", "err", err)
		}
	}()

	// --- What the service already had ---------------------------------
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: stack.Config().Consumer.ShutdownTimeout}, wlog)
	if err != nil {
		return err
	}
	// Router-level middlewares added before Install run outside the stack:
	// they see nil for a message the stack handed to a retry topic or the
	// DLQ. Watermill's Retry and PoisonQueue middlewares must go: the stack
	// replaces them, and Retry would hold the partition while it sleeps.
	router.AddMiddleware(logDeliveries(logger))
	ledger := &Ledger{}
	// The handler keeps its code; it only consumes through the stack's
	// subscriber (the service's consumer group) instead of its own.
	router.AddConsumerHandler(HandlerLedger, TopicInvoiceIssued, stack.Subscriber(), ledger.Record)

	// --- What kafkaevents adds ----------------------------------------
	// Install adds the stack's middlewares and a plugin that, when the router
	// starts, gives Ledger.record a retry and DLQ route of its own, creates
	// the retry and DLQ topics and starts the retry consumer.
	stack.Install(router)
	// Middlewares added after Install run inside the stack, around the
	// handler alone, and see the handler's own errors.
	router.AddMiddleware(handlerTimeout(10 * time.Second))
	shipping := &Shipping{}
	if _, err := stack.AddHandler(router, TopicShipmentRequested, HandlerShipping,
		kafkaevents.JSON(shipping.HandleShipmentRequested),
		kafkaevents.WithRetry(delayedretry.Policy{Attempts: 3, BaseDelay: 500 * time.Millisecond, MaxDelay: 5 * time.Second}),
		kafkaevents.WithMethod("Shipping.HandleShipmentRequested"),
	); err != nil {
		return err
	}

	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	// stopRouter closes the router and returns what Run returned.
	stopRouter := func() error {
		_ = router.Close()
		return <-routerDone
	}
	select {
	case <-router.Running():
	case err := <-routerDone:
		return fmt.Errorf("router: %w", err)
	case <-ctx.Done():
		return stopRouter()
	}

	app := &App{Stack: stack, Router: router, Ledger: ledger, Shipping: shipping, RunID: time.Now().UTC().Format("150405.000000")}
	if _, err := stack.Producer().SendBatch(ctx, sampleEvents(app.RunID)); err != nil {
		return errors.Join(fmt.Errorf("publish sample events: %w", err), stopRouter())
	}
	if started != nil {
		started(app)
	}

	// Run returns once ctx is done and the in-flight messages are finished.
	err = <-routerDone
	rs, ds := stack.RetryStats(), stack.DLQStats()
	logger.Info("stopped", "retries_scheduled", rs.Scheduled, "retries_delivered", rs.Delivered, "dlq_stored", ds.MessagesStored)
	return err
}

// sampleEvents returns the events published at start. Their IDs end with
// runID, so a run on a shared Kafka can tell its own events apart.
func sampleEvents(runID string) []kafkaevents.Message {
	inv := func(id string, flaky bool) kafkaevents.Message {
		return kafkaevents.Message{Topic: TopicInvoiceIssued, Key: id, Value: Invoice{ID: id, Amount: 120, Flaky: flaky}}
	}
	shp := func(id, address string) kafkaevents.Message {
		return kafkaevents.Message{Topic: TopicShipmentRequested, Key: id, Value: Shipment{ID: id, Address: address}}
	}
	return []kafkaevents.Message{
		inv("inv-"+runID+"-ok", false),
		inv("inv-"+runID+"-flaky", true),
		shp("shp-"+runID+"-ok", "1 Quay Street, Dublin"),
		shp("shp-"+runID+"-noaddr", ""),
	}
}

// logDeliveries is the kind of logging middleware a service already has.
func logDeliveries(logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			d := wire.DeliveryOf(msg)
			logger.Info("message handled", "handler", d.HandlerID, "source", d.Source.String(),
				"retry_count", d.RetryCount, "correlation_id", correlation.FromMessage(msg),
				"took", time.Since(start).Round(time.Microsecond).String(), "err", err)
			return out, err
		}
	}
}

// handlerTimeout cancels the message context after d, like Watermill's
// middleware.Timeout.
func handlerTimeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithTimeout(msg.Context(), d)
			defer cancel()
			msg.SetContext(ctx)
			return h(msg)
		}
	}
}

// deliveries records, per event ID, the retry count of every delivery.
type deliveries struct {
	mu sync.Mutex
	m  map[string][]int
}

func (d *deliveries) add(id string, retryCount int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string][]int{}
	}
	d.m[id] = append(d.m[id], retryCount)
}

// Of returns the retry counts of the deliveries of id, in order.
func (d *deliveries) Of(id string) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.m[id])
}
