package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

func TestMetrics(t *testing.T) {
	f := newFake()
	f.handlers = append(f.handlers, kafkaevents.HandlerInfo{ID: "audit-order", Pattern: "orders.created"}, kafkaevents.HandlerInfo{ID: "raw"})
	f.reprocessActive = true
	f.retryStats = delayedretry.Stats{
		HandlerStats: delayedretry.HandlerStats{
			MessagesProcessed: 10, MessagesDelayed: 4, MessagesSkipped: 1, ErrorsEncountered: 3,
			Scheduled: 5, Delivered: 4, Exhausted: 1, Unroutable: 2, Waiting: 1,
		},
		Handlers: map[string]delayedretry.HandlerStats{"ship-order": {MessagesProcessed: 10, ErrorsEncountered: 3}},
		Lateness: delayedretry.Lateness{Count: 4, Early: 1, P50: 1500 * time.Microsecond, P99: 250 * time.Millisecond, Max: 2 * time.Second},
	}
	f.dlqStats = dlq.Stats{
		MessagesStored: 3, MessagesReprocessed: 2, MessagesSkipped: 7, MessagesFailed: 1, MessagesParked: 1,
		ByReason: map[string]int64{"retries_exhausted": 2, "permanent": 1},
		ByTopic:  map[string]int64{"orders.paid": 3},
	}
	f.lag = []kafkaevents.PartitionLag{{Topic: "orders.paid", Partition: 0, Committed: 40, End: 42, Lag: 2}}
	f.lanes = []kafkaevents.RetryLane{{Topic: "orders.retry", Backlog: 3, OldestDue: time.Date(2025, 3, 14, 15, 10, 0, 0, time.UTC)}}

	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/metrics", "", "")

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{
		"timestamp": "2025-03-14T15:09:26.535Z",
		"handlers": {"registered": 4, "patterns": ["orders.created", "orders.paid"]},
		"retry": {
			"enabled": true, "topics": ["orders.retry"], "running": true,
			"messagesProcessed": 10, "messagesDelayed": 4, "messagesSkipped": 1, "errorsEncountered": 3,
			"scheduled": 5, "delivered": 4, "exhausted": 1, "unroutable": 2, "waiting": 1,
			"handlers": {"ship-order": {"messagesProcessed": 10, "messagesDelayed": 0, "messagesSkipped": 0,
				"errorsEncountered": 3, "scheduled": 0, "delivered": 0, "exhausted": 0, "unroutable": 0, "waiting": 0}},
			"lateness": {"count": 4, "early": 1, "p50Ms": 1.5, "p99Ms": 250, "maxMs": 2000},
			"lanes": [{"topic": "orders.retry", "backlog": 3, "oldestDue": "2025-03-14T15:10:00Z"}]
		},
		"dlq": {
			"enabled": true, "topic": "orders.dlq", "reprocessing": true,
			"messagesStored": 3, "messagesReprocessed": 2, "messagesSkipped": 7, "messagesFailed": 1, "messagesParked": 1,
			"byReason": {"retries_exhausted": 2, "permanent": 1}, "byTopic": {"orders.paid": 3}
		},
		"lag": [{"topic": "orders.paid", "partition": 0, "committed": 40, "end": 42, "lag": 2}]
	}`, rec.Body.String())
}

func TestMetricsEmpty(t *testing.T) {
	f := newFake()
	f.handlers, f.retryTopics, f.retryEnabled, f.retryRunning, f.dlqEnabled = nil, nil, false, false, false

	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/metrics", "", "")

	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.NotContains(t, body, "null", "empty collections must be [] or {}")
	assert.NotContains(t, body, "lagError")
	assert.NotContains(t, body, "Ns\"", "raw nanosecond fields must not be exposed")
	assert.Contains(t, body, `"patterns":[]`)
	assert.Contains(t, body, `"topics":[]`)
	assert.Contains(t, body, `"lag":[]`)
	assert.Contains(t, body, `"lanes":[]`)
}

func TestMetricsLagFailure(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(f *fakeSource, release <-chan struct{})
		wantErr string
	}{
		{
			name: "lag error",
			mutate: func(f *fakeSource, _ <-chan struct{}) {
				f.lag = []kafkaevents.PartitionLag{{Topic: "ignored"}}
				f.lagErr = errors.New("kafka: broker not available")
			},
			wantErr: "kafka: broker not available",
		},
		{
			name: "lag hangs",
			mutate: func(f *fakeSource, release <-chan struct{}) {
				f.lagHook = func(context.Context) ([]kafkaevents.PartitionLag, error) {
					<-release
					return nil, nil
				}
			},
			wantErr: "lag did not finish within 20ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			f := newFake()
			tt.mutate(f, release)

			rec := request(newServer(t, f, health.Config{ReadTimeout: 20 * time.Millisecond}), http.MethodGet, "/kafka/metrics", "", "")

			require.Equal(t, http.StatusOK, rec.Code)
			var body struct {
				Lag      []kafkaevents.PartitionLag `json:"lag"`
				LagError string                     `json:"lagError"`
				Retry    map[string]any             `json:"retry"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantErr, body.LagError)
			assert.NotNil(t, body.Lag)
			assert.Empty(t, body.Lag)
			assert.Contains(t, rec.Body.String(), `"lag":[]`)
			assert.Equal(t, true, body.Retry["enabled"], "the rest of the metrics are still there")
		})
	}
}

func TestPrometheus(t *testing.T) {
	f := newFake()
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_messages_total", Help: "Messages."}, []string{"topic"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 1}})
	reg.MustRegister(counter, hist)
	counter.WithLabelValues("orders.paid").Add(3)
	hist.Observe(0.05)
	hist.Observe(0.5)
	f.registry = reg

	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/metrics/prometheus", "", "")

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"), rec.Header().Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)

	require.Contains(t, families, "test_messages_total")
	c := families["test_messages_total"]
	assert.Equal(t, dto.MetricType_COUNTER, c.GetType())
	require.Len(t, c.GetMetric(), 1)
	assert.InDelta(t, 3.0, c.GetMetric()[0].GetCounter().GetValue(), 1e-9)
	assert.Equal(t, "orders.paid", c.GetMetric()[0].GetLabel()[0].GetValue())

	require.Contains(t, families, "test_latency_seconds")
	h := families["test_latency_seconds"]
	assert.Equal(t, dto.MetricType_HISTOGRAM, h.GetType())
	require.Len(t, h.GetMetric(), 1)
	assert.Equal(t, uint64(2), h.GetMetric()[0].GetHistogram().GetSampleCount())
	assert.InDelta(t, 0.55, h.GetMetric()[0].GetHistogram().GetSampleSum(), 1e-9)
}

func TestPrometheusWithoutRegistry(t *testing.T) {
	f := newFake()
	f.registry = nil
	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/metrics/prometheus", "", "")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	code, _ := errorOf(t, rec)
	assert.Equal(t, "unavailable", code)
}

func TestHandlers(t *testing.T) {
	f := newFake()
	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/handlers", "", "")

	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"total":2,"handlers":[
		{"id":"bill-order","pattern":"orders.created","method":"Billing.OnCreated","options":{
			"retry":{"enabled":true,"attempts":3,"baseDelayMs":500,"maxDelayMs":30000,"backoff":"exponential","jitter":0.2},"dlq":true}},
		{"id":"ship-order","pattern":"orders.paid","options":{
			"retry":{"enabled":true,"attempts":5,"baseDelayMs":1000,"maxDelayMs":60000,"backoff":"exponential","jitter":0.1},"dlq":true}}
	]}`, rec.Body.String())
	assert.Equal(t, "ship-order", f.handlers[0].ID, "the Source's slice must not be reordered")
}

func TestHandlersEmpty(t *testing.T) {
	f := newFake()
	f.handlers = nil
	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/handlers", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"total":0,"handlers":[]}`, rec.Body.String())
}

func TestDLQStatus(t *testing.T) {
	started := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status dlq.Status
		want   string
	}{
		{name: "nothing ran", want: `{"running":[],"last":{}}`},
		{
			name: "one running, one finished",
			status: dlq.Status{
				Running: []dlq.Progress{{Topic: "orders.paid", GroupID: "orders.dlq.reprocess.orders.paid", State: dlq.StateRunning, StartedAt: started, Reprocessed: 5, Remaining: 10}},
				Last: map[string]dlq.Progress{"orders.created": {
					Topic: "orders.created", GroupID: "orders.dlq.reprocess.orders.created", State: dlq.StateCompleted,
					StartedAt: started, FinishedAt: started.Add(time.Minute), Reprocessed: 7,
				}},
			},
			want: `{"running":[{"topic":"orders.paid","groupId":"orders.dlq.reprocess.orders.paid","state":"running",
				"startedAt":"2025-03-14T15:00:00Z","reprocessed":5,"failed":0,"skipped":0,"parked":0,"remaining":10}],
				"last":{"orders.created":{"topic":"orders.created","groupId":"orders.dlq.reprocess.orders.created","state":"completed",
				"startedAt":"2025-03-14T15:00:00Z","finishedAt":"2025-03-14T15:01:00Z","reprocessed":7,"failed":0,"skipped":0,"parked":0,"remaining":0}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.status = tt.status
			// No admin token configured: the status endpoint is open.
			rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/dlq/status", "", "")
			require.Equal(t, http.StatusOK, rec.Code)
			assert.JSONEq(t, tt.want, rec.Body.String())
		})
	}
}
