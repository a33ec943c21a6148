package health_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*fakeSource)
		wantCode   int
		wantStatus string
	}{
		{name: "healthy", mutate: func(*fakeSource) {}, wantCode: http.StatusOK, wantStatus: "healthy"},
		{
			name:     "retry disabled and not running is healthy",
			mutate:   func(f *fakeSource) { f.retryEnabled, f.retryRunning = false, false },
			wantCode: http.StatusOK, wantStatus: "healthy",
		},
		{
			name:     "retry enabled but not running is degraded",
			mutate:   func(f *fakeSource) { f.retryRunning = false },
			wantCode: http.StatusOK, wantStatus: "degraded",
		},
		{
			name:     "no handler is degraded",
			mutate:   func(f *fakeSource) { f.handlers = nil },
			wantCode: http.StatusOK, wantStatus: "degraded",
		},
		{
			name:     "producer not connected is unhealthy",
			mutate:   func(f *fakeSource) { f.connected = false },
			wantCode: http.StatusServiceUnavailable, wantStatus: "unhealthy",
		},
		{
			name:     "unhealthy wins over degraded",
			mutate:   func(f *fakeSource) { f.connected, f.retryRunning, f.handlers = false, false, nil },
			wantCode: http.StatusServiceUnavailable, wantStatus: "unhealthy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			tt.mutate(f)
			rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/health", "", "")
			require.Equal(t, tt.wantCode, rec.Code, rec.Body.String())
			var body map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantStatus, body["status"])
			assert.Equal(t, "2025-03-14T15:09:26.535Z", body["timestamp"])
		})
	}
}

func TestHealthBody(t *testing.T) {
	f := newFake()
	f.reprocessActive = true
	f.retryRunning = false
	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/health", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	assert.JSONEq(t, `{
		"status": "degraded",
		"timestamp": "2025-03-14T15:09:26.535Z",
		"components": {
			"producer": {"connected": true},
			"retry": {"running": false, "enabled": true},
			"dlq": {"reprocessing": true, "enabled": true},
			"handlers": {"registered": 2}
		}
	}`, rec.Body.String())
	assert.NotContains(t, f.Calls(), "Readiness", "health must not run the network checks")
	assert.NotContains(t, f.Calls(), "Lag")
}

func TestReady(t *testing.T) {
	tests := []struct {
		name      string
		readiness kafkaevents.Readiness
		wantCode  int
		wantBody  string
	}{
		{
			name:      "ready",
			readiness: kafkaevents.Readiness{Producer: true, Handlers: true, Consumer: true, Errors: map[string]string{}},
			wantCode:  http.StatusOK,
			wantBody:  `{"ready":true,"checks":{"producer":true,"handlers":true,"consumer":true}}`,
		},
		{
			name: "ready with a stuck record",
			readiness: kafkaevents.Readiness{
				Producer: true, Handlers: true, Consumer: true,
				Warnings: map[string]string{"handler Orders.created": "the record at offset 7 of orders/1 has been in its handler for 2m0s"},
			},
			wantCode: http.StatusOK,
			wantBody: `{"ready":true,"checks":{"producer":true,"handlers":true,"consumer":true},
				"warnings":{"handler Orders.created":"the record at offset 7 of orders/1 has been in its handler for 2m0s"}}`,
		},
		{
			name: "consumer not assigned",
			readiness: kafkaevents.Readiness{
				Producer: true, Handlers: true,
				Errors: map[string]string{"consumer": "consumer group orders is PreparingRebalance"},
			},
			wantCode: http.StatusServiceUnavailable,
			wantBody: `{"ready":false,"checks":{"producer":true,"handlers":true,"consumer":false},
				"errors":{"consumer":"consumer group orders is PreparingRebalance"}}`,
		},
		{
			name: "broker unreachable",
			readiness: kafkaevents.Readiness{
				Handlers: true,
				Errors:   map[string]string{"producer": "dial tcp: connection refused", "consumer": "broker unreachable"},
			},
			wantCode: http.StatusServiceUnavailable,
			wantBody: `{"ready":false,"checks":{"producer":false,"handlers":true,"consumer":false},
				"errors":{"producer":"dial tcp: connection refused","consumer":"broker unreachable"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.readiness = tt.readiness
			rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/health/ready", "", "")
			require.Equal(t, tt.wantCode, rec.Code, rec.Body.String())
			assert.JSONEq(t, tt.wantBody, rec.Body.String())
		})
	}
}

func TestReadyBoundsTheChecks(t *testing.T) {
	tests := []struct {
		name string
		hook func(release <-chan struct{}) func(context.Context) kafkaevents.Readiness
	}{
		{
			name: "checks that honour the context",
			hook: func(<-chan struct{}) func(context.Context) kafkaevents.Readiness {
				return func(ctx context.Context) kafkaevents.Readiness {
					<-ctx.Done()
					return kafkaevents.Readiness{Producer: true, Handlers: true, Consumer: true}
				}
			},
		},
		{
			name: "checks that ignore the context",
			hook: func(release <-chan struct{}) func(context.Context) kafkaevents.Readiness {
				return func(context.Context) kafkaevents.Readiness {
					<-release
					return kafkaevents.Readiness{Producer: true, Handlers: true, Consumer: true}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			f := newFake()
			hasDeadline := make(chan bool, 1)
			hook := tt.hook(release)
			f.readinessHook = func(ctx context.Context) kafkaevents.Readiness {
				_, ok := ctx.Deadline()
				hasDeadline <- ok
				return hook(ctx)
			}
			e := newServer(t, f, health.Config{ReadTimeout: 20 * time.Millisecond})

			rec := request(e, http.MethodGet, "/kafka/health/ready", "", "")

			require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
			assert.JSONEq(t, `{"ready":false,"checks":{"producer":false,"handlers":false,"consumer":false},
				"errors":{"timeout":"readiness checks did not finish within 20ms"}}`, rec.Body.String())
			select {
			case ok := <-hasDeadline:
				assert.True(t, ok, "Readiness must get a context with a deadline")
			case <-time.After(5 * time.Second):
				t.Fatal("Readiness was not called")
			}
		})
	}
}

func TestReadyPanicIsNotReady(t *testing.T) {
	f := newFake()
	f.readinessHook = func(context.Context) kafkaevents.Readiness { panic("boom") }
	rec := request(newServer(t, f, health.Config{}), http.MethodGet, "/kafka/health/ready", "", "")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.JSONEq(t, `{"ready":false,"checks":{"producer":false,"handlers":false,"consumer":false},
		"errors":{"readiness":"panic: boom"}}`, rec.Body.String())
}

func TestLive(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f := newFake()
	f.connected = false
	f.readinessHook = func(context.Context) kafkaevents.Readiness { <-release; return kafkaevents.Readiness{} }
	e := newServer(t, f, health.Config{})

	rec := request(e, http.MethodGet, "/kafka/health/live", "", "")

	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"alive":true,"timestamp":"2025-03-14T15:09:26.535Z"}`, rec.Body.String())
	assert.Empty(t, f.Calls(), "liveness must not touch the Source")
}
