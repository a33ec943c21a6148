package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

const (
	uiTopic   = "orders"
	uiHandler = "Orders.handle"
	uiToken   = "console-t0ken-9f2c"
)

// consoleService is a Stack with one handler, its monitoring endpoints and
// console on an HTTP server, and a record of what the handler saw. It runs on
// the embedded broker, or on the Kafka named by KAFKA_BROKERS (make
// test-kafka), with a topic and service name of its own there.
type consoleService struct {
	stack *kafkaevents.Stack
	url   string
	// topic is the handler's topic; service the stack's service name.
	topic   string
	service string
	failing atomic.Bool
	// transient makes the handler fail with an error that is retried.
	transient atomic.Bool
	mu        sync.Mutex
	seen      map[string]int
	// held, when set, is the payload the handler holds until release is
	// closed.
	held    string
	release chan struct{}
	audit   *auditLog
}

// hold makes the handler wait, on payload, until the returned function is
// called (or the message's context ends).
func (s *consoleService) hold(payload string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.release = payload, make(chan struct{})
	ch := s.release
	return sync.OnceFunc(func() { close(ch) })
}

func (s *consoleService) handled(payload string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[payload]
}

// auditLog keeps the lines the endpoints log.
type auditLog struct {
	watermill.NopLogger
	mu    sync.Mutex
	lines []string
}

func (l *auditLog) Info(msg string, fields watermill.LogFields) {
	b, _ := json.Marshal(fields)
	l.mu.Lock()
	l.lines = append(l.lines, msg+" "+string(b))
	l.mu.Unlock()
}

func (l *auditLog) With(watermill.LogFields) watermill.LoggerAdapter { return l }

func (l *auditLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func startConsoleService(t *testing.T) *consoleService {
	t.Helper()
	return startConsoleServiceWith(t, kafkaevents.RetryConfig{BaseDelay: 100 * time.Millisecond})
}

// startConsoleServiceWith is startConsoleService with a retry policy.
func startConsoleServiceWith(t *testing.T, retry kafkaevents.RetryConfig) *consoleService {
	t.Helper()
	topic, service, brokers := uiTopic, "shop", []string(nil)
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		n := time.Now().UnixNano()%1e9*10000 + int64(rand.IntN(10000))
		topic, service = fmt.Sprintf("%s-%d", uiTopic, n), fmt.Sprintf("shop-%d", n)
		brokers = strings.Split(v, ",")
		createTopic(t, brokers, topic)
	} else {
		brokers = kafkatest.New(t, kafkatest.Topics(uiTopic)).Addrs()
	}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	stack, err := kafkaevents.New(kafkaevents.Config{
		ClientID:      service,
		Brokers:       brokers,
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Retry:         retry,
	}, kafkaevents.WithLogger(watermill.NopLogger{}),
		// DLQ records carry the traceparent of the failed delivery's span.
		kafkaevents.WithTracerProvider(tp),
		kafkaevents.WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	svc := &consoleService{stack: stack, topic: topic, service: service, seen: map[string]int{}, audit: &auditLog{}}
	svc.failing.Store(true)

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	stack.Install(router)
	_, err = stack.AddHandler(router, topic, uiHandler, func(msg *message.Message) error {
		svc.mu.Lock()
		svc.seen[string(msg.Payload)]++
		held, release := svc.held == string(msg.Payload), svc.release
		svc.mu.Unlock()
		if held {
			select {
			case <-release:
			case <-msg.Context().Done():
			}
		}
		if svc.transient.Load() {
			return errors.New("warehouse busy")
		}
		if svc.failing.Load() {
			return wire.Permanent(errors.New("payment declined"))
		}
		return nil
	})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = router.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = router.Close()
		<-done
		_ = stack.Close()
	})
	select {
	case <-router.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("router did not start")
	}

	e := echo.New()
	require.NoError(t, health.Register(e, health.Config{
		Source: stack, AdminToken: uiToken, TraceURL: "https://trace.example/trace/{traceId}", Logger: svc.audit,
	}))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	svc.url = srv.URL
	return svc
}

// createTopic creates topic on real Kafka with the embedded broker's default
// of 3 partitions, and waits until its metadata is there.
func createTopic(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false))
	require.Eventually(t, func() bool {
		meta, err := admin.DescribeTopics([]string{topic})
		return err == nil && len(meta) == 1 && meta[0].Err == sarama.ErrNoError && len(meta[0].Partitions) == 3
	}, 30*time.Second, 50*time.Millisecond, "topic %s created", topic)
}
