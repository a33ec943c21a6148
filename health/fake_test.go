package health_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

// The Stack is the Source the package is written for.
var _ health.Source = (*kafkaevents.Stack)(nil)

// fakeSource is a Source, both a Status and an Admin, whose answers are
// fields and which records the calls it gets. Set the fields before serving requests; read the calls
// through its methods.
type fakeSource struct {
	connected, retryEnabled, retryRunning, dlqEnabled, reprocessActive bool

	retryTopics []string
	retryStats  delayedretry.Stats
	dlqTopic    string
	dlqStats    dlq.Stats
	handlers    []kafkaevents.HandlerInfo
	registry    *prometheus.Registry

	readiness kafkaevents.Readiness
	// readinessHook, when set, runs instead of returning readiness.
	readinessHook func(ctx context.Context) kafkaevents.Readiness

	lag     []kafkaevents.PartitionLag
	lagErr  error
	lagHook func(ctx context.Context) ([]kafkaevents.PartitionLag, error)

	startErr  error
	stopN     int
	status    dlq.Status
	page      dlq.Page
	browseErr error
	resetErr  error

	mu      sync.Mutex
	calls   []string
	started []dlq.ReprocessOptions
	stopped []string
	browsed []browseCall
	resets  []string
	// searched holds the queries of SearchDLQ (fake_console_test.go).
	searched []dlq.Query
	// lanes is the answer of RetryLanes.
	lanes []kafkaevents.RetryLane
}

type browseCall struct {
	Topic         string
	Limit, Offset int
}

// newFake returns a healthy source: producer connected, retries and the
// DLQ on, two handlers.
func newFake() *fakeSource {
	return &fakeSource{
		connected: true, retryEnabled: true, retryRunning: true, dlqEnabled: true,
		retryTopics: []string{"orders.retry"},
		dlqTopic:    "orders.dlq",
		handlers: []kafkaevents.HandlerInfo{
			{
				ID: "ship-order", Pattern: "orders.paid",
				Options: kafkaevents.HandlerOptions{DLQ: true, Retry: kafkaevents.RetryOptions{
					Enabled: true, Attempts: 5, BaseDelayMs: 1000, MaxDelayMs: 60000, Backoff: "exponential", Jitter: 0.1,
				}},
			},
			{
				ID: "bill-order", Pattern: "orders.created", Method: "Billing.OnCreated",
				Options: kafkaevents.HandlerOptions{DLQ: true, Retry: kafkaevents.RetryOptions{
					Enabled: true, Attempts: 3, BaseDelayMs: 500, MaxDelayMs: 30000, Backoff: "exponential", Jitter: 0.2,
				}},
			},
		},
		registry:  prometheus.NewRegistry(),
		readiness: kafkaevents.Readiness{Producer: true, Handlers: true, Consumer: true},
		stopN:     1,
	}
}

func (f *fakeSource) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

// Calls returns the names of the methods called so far.
func (f *fakeSource) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSource) Started() []dlq.ReprocessOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dlq.ReprocessOptions(nil), f.started...)
}

func (f *fakeSource) Stopped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stopped...)
}

func (f *fakeSource) Browsed() []browseCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]browseCall(nil), f.browsed...)
}

func (f *fakeSource) Resets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.resets...)
}

func (f *fakeSource) ServiceName() string     { f.record("ServiceName"); return "orders" }
func (f *fakeSource) ProducerConnected() bool { f.record("ProducerConnected"); return f.connected }
func (f *fakeSource) RetryEnabled() bool      { f.record("RetryEnabled"); return f.retryEnabled }
func (f *fakeSource) RetryRunning() bool      { f.record("RetryRunning"); return f.retryRunning }
func (f *fakeSource) RetryTopics() []string   { f.record("RetryTopics"); return f.retryTopics }
func (f *fakeSource) RetryStats() delayedretry.Stats {
	f.record("RetryStats")
	return f.retryStats
}
func (f *fakeSource) DLQEnabled() bool    { f.record("DLQEnabled"); return f.dlqEnabled }
func (f *fakeSource) DLQTopic() string    { f.record("DLQTopic"); return f.dlqTopic }
func (f *fakeSource) DLQStats() dlq.Stats { f.record("DLQStats"); return f.dlqStats }
func (f *fakeSource) Handlers() []kafkaevents.HandlerInfo {
	f.record("Handlers")
	return f.handlers
}

func (f *fakeSource) Readiness(ctx context.Context) kafkaevents.Readiness {
	f.record("Readiness")
	if f.readinessHook != nil {
		return f.readinessHook(ctx)
	}
	return f.readiness
}

func (f *fakeSource) Lag(ctx context.Context) ([]kafkaevents.PartitionLag, error) {
	f.record("Lag")
	if f.lagHook != nil {
		return f.lagHook(ctx)
	}
	return f.lag, f.lagErr
}

func (f *fakeSource) StartReprocess(opts dlq.ReprocessOptions) error {
	f.record("StartReprocess")
	if f.startErr != nil {
		return f.startErr
	}
	f.mu.Lock()
	f.started = append(f.started, opts)
	f.mu.Unlock()
	return nil
}

func (f *fakeSource) StopReprocess(topic string) int {
	f.record("StopReprocess")
	f.mu.Lock()
	f.stopped = append(f.stopped, topic)
	f.mu.Unlock()
	return f.stopN
}

func (f *fakeSource) ReprocessActive() bool { f.record("ReprocessActive"); return f.reprocessActive }
func (f *fakeSource) ReprocessStatus() dlq.Status {
	f.record("ReprocessStatus")
	return f.status
}

func (f *fakeSource) BrowseDLQ(_ context.Context, topic string, limit, offset int) (dlq.Page, error) {
	f.record("BrowseDLQ")
	f.mu.Lock()
	f.browsed = append(f.browsed, browseCall{Topic: topic, Limit: limit, Offset: offset})
	f.mu.Unlock()
	if f.browseErr != nil {
		return dlq.Page{}, f.browseErr
	}
	p := f.page
	p.Topic, p.Limit, p.Offset = topic, limit, offset
	return p, nil
}

func (f *fakeSource) ResetMetrics(component string) error {
	f.record("ResetMetrics")
	if f.resetErr != nil {
		return f.resetErr
	}
	f.mu.Lock()
	f.resets = append(f.resets, component)
	f.mu.Unlock()
	return nil
}

func (f *fakeSource) Gatherer() prometheus.Gatherer {
	f.record("Gatherer")
	if f.registry == nil {
		return nil
	}
	return f.registry
}

// fixedNow is the clock of the tests.
var fixedNow = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

const testToken = "s3cret-admin-token"

// newServer registers the endpoints for f on a new Echo with cfg, whose
// Source is set to f and whose Now, when nil, to the fixed clock.
func newServer(t testing.TB, f *fakeSource, cfg health.Config) *echo.Echo {
	t.Helper()
	e := echo.New()
	cfg.Source = f
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	require.NoError(t, health.Register(e, cfg))
	return e
}

// adminServer is newServer with AdminToken testToken.
func adminServer(t testing.TB, f *fakeSource) *echo.Echo {
	t.Helper()
	return newServer(t, f, health.Config{AdminToken: testToken})
}

// newRequest builds a request with an optional JSON body.
func newRequest(method, target, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// request serves one request. A non-empty token is sent as a bearer token.
func request(h http.Handler, method, target, body, token string) *httptest.ResponseRecorder {
	req := newRequest(method, target, body)
	if token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+token)
	}
	return serve(h, req)
}

// errorOf decodes an error answer.
func errorOf(t testing.TB, rec *httptest.ResponseRecorder) (code, message string) {
	t.Helper()
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "body: %s", rec.Body.String())
	require.NotEmpty(t, body.Error, "body: %s", rec.Body.String())
	require.NotEmpty(t, body.Message, "body: %s", rec.Body.String())
	return body.Error, body.Message
}
