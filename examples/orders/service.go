package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// Topics of the reference service.
const (
	TopicOrderCreated   = "order.created"
	TopicUserRegistered = "user.registered"
	TopicOrderProcessed = "order.processed"

	HandlerOrderCreated   = "OrderService.handleOrderCreated"
	HandlerUserRegistered = "UserService.handleUserRegistered"
)

// Options configure Start.
type Options struct {
	// Lookup reads the environment. Default: none set.
	Lookup func(string) (string, bool)
	// Logger logs. Default: slog.Default().
	Logger *slog.Logger
}

// Service is a running reference service.
type Service struct {
	URL     string
	Brokers []string
	Stack   *kafkaevents.Stack
	Router  *message.Router

	logger   *slog.Logger
	broker   *kafkatest.Broker
	echo     *echo.Echo
	done     chan error
	closeMu  sync.Mutex
	closed   bool
	routerCh chan error
	adminSet bool

	monitoring health.Config
	tp         *sdktrace.TracerProvider
}

// Order is the payload of order.created.
type Order struct {
	OrderID    string          `json:"orderId"`
	ShouldFail bool            `json:"shouldFail,omitempty"`
	FailTimes  int             `json:"failTimes,omitempty"`
	Permanent  bool            `json:"permanent,omitempty"`
	Extra      json.RawMessage `json:"-"`
}

// User is the payload of user.registered.
type User struct {
	UserID string `json:"userId"`
	Email  string `json:"email,omitempty"`
}

// OrderService handles order.created.
type OrderService struct {
	producer *kafkaevents.Producer
	mu       sync.Mutex
	failures map[string]int
}

// HandleOrderCreated fails as the payload asks, and otherwise publishes
// order.processed keyed by the order ID.
func (s *OrderService) HandleOrderCreated(ctx context.Context, o Order) error {
	switch {
	case o.Permanent:
		return wire.Permanent(fmt.Errorf("order %s: permanent failure requested", o.OrderID))
	case o.ShouldFail:
		return fmt.Errorf("order %s: failure requested (shouldFail)", o.OrderID)
	case o.FailTimes > 0:
		s.mu.Lock()
		n := s.failures[o.OrderID]
		if n < o.FailTimes {
			s.failures[o.OrderID] = n + 1
		}
		s.mu.Unlock()
		if n < o.FailTimes {
			return fmt.Errorf("order %s: failure %d of %d requested (failTimes)", o.OrderID, n+1, o.FailTimes)
		}
	}
	_, err := s.producer.Send(ctx, kafkaevents.Message{
		Topic: TopicOrderProcessed,
		Key:   o.OrderID,
		Value: map[string]any{"orderId": o.OrderID, "status": "processed", "processedAt": time.Now().UTC().Format(time.RFC3339Nano)},
	})
	return err
}

// Start starts the service: the embedded broker when KAFKA_BROKERS is unset,
// the stack, the router and the HTTP server. It returns once the router
// runs.
func Start(ctx context.Context, opts Options) (*Service, error) {
	lookup := opts.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	svc := &Service{logger: logger, done: make(chan error, 2), routerCh: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			_ = svc.Close()
		}
	}()

	cfg, err := kafkaevents.Config{ClientID: envOr(lookup, "KAFKA_CLIENT_ID", "orders")}.FromLookup(lookup)
	if err != nil {
		return nil, err
	}
	if cfg.Consumer.GroupID == "" {
		cfg.Consumer.GroupID = "orders-group"
	}
	if len(cfg.Brokers) == 0 {
		svc.broker, err = kafkatest.Start(kafkatest.Topics(TopicOrderCreated, TopicUserRegistered, TopicOrderProcessed))
		if err != nil {
			return nil, err
		}
		cfg.Brokers = svc.broker.Addrs()
		if cfg.Subscriptions.FromBeginning == nil {
			// A fresh in-memory broker: read what was published before the
			// consumer group got its partitions.
			cfg.Subscriptions.FromBeginning = kafkaevents.Bool(true)
		}
		logger.Info("embedded Kafka broker started (set KAFKA_BROKERS to use your own)", "address", strings.Join(cfg.Brokers, ","))
	}
	svc.Brokers = cfg.Brokers
	svc.adminSet = cfg.Monitoring.AdminToken != ""

	wlog := quietLogger{kafkaevents.NewSlogLogger(logger)}
	stackOpts := []kafkaevents.Option{kafkaevents.WithLogger(wlog)}
	if svc.tp, err = tracerProvider(ctx, lookup, cfg.ClientID); err != nil {
		return nil, err
	}
	if svc.tp != nil {
		stackOpts = append(stackOpts, kafkaevents.WithTracerProvider(svc.tp), kafkaevents.WithPropagator(propagator()))
		logger.Info("tracing on (OpenTelemetry)")
	} else {
		// Off: no spans and no trace headers written.
		stackOpts = append(stackOpts, kafkaevents.WithoutTracing())
	}
	stack, err := kafkaevents.NewContext(ctx, cfg, stackOpts...)
	if err != nil {
		return nil, err
	}
	svc.Stack = stack
	cfg = stack.Config()

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.Consumer.ShutdownTimeout}, wlog)
	if err != nil {
		return nil, err
	}
	svc.Router = router
	stack.Install(router)
	orders := &OrderService{producer: stack.Producer(), failures: map[string]int{}}
	if _, err := stack.AddHandler(router, TopicOrderCreated, HandlerOrderCreated,
		kafkaevents.JSON(orders.HandleOrderCreated), kafkaevents.WithMethod("OrderService.HandleOrderCreated")); err != nil {
		return nil, err
	}
	if _, err := stack.AddHandler(router, TopicUserRegistered, HandlerUserRegistered,
		kafkaevents.JSON(func(ctx context.Context, u User) error { return nil }), kafkaevents.WithMethod("UserService.HandleUserRegistered")); err != nil {
		return nil, err
	}

	go func() { svc.routerCh <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-svc.routerCh:
		return nil, fmt.Errorf("router: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	var tp trace.TracerProvider // stays a nil interface when tracing is off
	if svc.tp != nil {
		tp = svc.tp
	}
	if svc.echo, svc.monitoring, err = newHTTP(stack, cfg, logger, tp); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(envOr(lookup, "HOST", ""), envOr(lookup, "PORT", "3000")))
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	svc.URL = "http://" + hostPort(ln.Addr())
	// Header, read, write and idle timeouts and a header size limit, so
	// that slow or idle clients cannot hold the server.
	health.SetServerDefaults(svc.echo.Server)
	go func() { svc.done <- svc.echo.Server.Serve(ln) }()
	go func() {
		if err := <-svc.routerCh; err != nil {
			svc.done <- fmt.Errorf("router: %w", err)
		} else {
			svc.done <- nil
		}
	}()
	ok = true
	return svc, nil
}

func hostPort(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Done reports the HTTP server or the router stopping on its own.
func (s *Service) Done() <-chan error { return s.done }

// Close stops consuming (in-flight handlers finish within the shutdown
// timeout and their offsets are committed), then the HTTP server, the stack
// and the embedded broker. It is idempotent.
func (s *Service) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.Router != nil {
		errs = append(errs, s.Router.Close())
	}
	if s.echo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.echo.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		cancel()
	}
	if s.Stack != nil {
		errs = append(errs, s.Stack.Close())
	}
	if s.tp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.tp.Shutdown(ctx))
		cancel()
	}
	if s.broker != nil {
		s.broker.Close()
	}
	return errors.Join(errs...)
}

// ConsoleURL returns the URL of the operator console, or "" when monitoring
// or the console is off.
func (s *Service) ConsoleURL() string {
	if s.monitoring.Source == nil {
		return ""
	}
	return s.monitoring.ConsoleURL(s.URL)
}

// TryItOut returns the commands to try the service with.
func (s *Service) TryItOut() []string {
	token := "$KAFKA_ADMIN_TOKEN"
	lines := []string{
		"",
		"Try it:",
		fmt.Sprintf(`  curl -s -XPOST %s/orders -H 'content-type: application/json' -d '{"orderId":"o-1","amount":42}'`, s.URL),
		fmt.Sprintf(`  curl -s -XPOST %s/orders -H 'content-type: application/json' -d '{"orderId":"o-2","failTimes":2}'   # two retries, then success`, s.URL),
		fmt.Sprintf(`  curl -s -XPOST %s/orders -H 'content-type: application/json' -d '{"orderId":"o-3","shouldFail":true}' # retries exhausted, DLQ`, s.URL),
		fmt.Sprintf(`  curl -s -XPOST '%s/orders?key=customer-7' -H 'content-type: application/json' -d '{"orderId":"c7-1","failTimes":2}' # then c7-2 with the same key: with KAFKA_RETRY_KEEP_KEY_ORDER=true it waits for c7-1`, s.URL),
		fmt.Sprintf(`  curl -s %s/kafka/metrics`, s.URL),
		fmt.Sprintf(`  curl -s %s/kafka/dlq/status`, s.URL),
		fmt.Sprintf(`  curl -s -XPOST %s/kafka/dlq/reprocess -H "authorization: Bearer %s" -H 'content-type: application/json' -d '{"topic":"order.created"}'`, s.URL, token),
	}
	if !s.adminSet {
		lines = append(lines, "  (admin endpoints are off: start with KAFKA_ADMIN_TOKEN=<secret> to enable them)")
	}
	if u := s.ConsoleURL(); u != "" {
		lines = append(lines, "", "Operator console: "+u)
	}
	if s.monitoring.Source != nil {
		lines = append(lines, "", "Monitoring endpoints:")
		for _, u := range s.monitoring.URLs(s.URL) {
			lines = append(lines, "  "+u)
		}
	}
	return append(lines, "")
}

func envOr(lookup func(string) (string, bool), key, def string) string {
	if v, ok := lookup(key); ok && v != "" {
		return v
	}
	return def
}
