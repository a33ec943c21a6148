package health_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/health"
)

func TestRegisterRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		routes  health.Routes
		cfg     health.Config
		wantErr string
	}{
		{name: "nil source", routes: echo.New(), cfg: health.Config{}, wantErr: "Config.Source is required"},
		{name: "relative prefix", routes: echo.New(), cfg: health.Config{Source: newFake(), Prefix: "kafka"}, wantErr: `Config.Prefix "kafka" must start with "/"`},
		{name: "negative read timeout", routes: echo.New(), cfg: health.Config{Source: newFake(), ReadTimeout: -time.Second}, wantErr: "Config.ReadTimeout -1s must not be negative"},
		{name: "nil routes", routes: nil, cfg: health.Config{Source: newFake()}, wantErr: "got nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = health.Register(tt.routes, tt.cfg) })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	err := health.Config{Prefix: "x", ReadTimeout: -1}.Validate()
	require.Error(t, err)
	for _, want := range []string{"Source", "Prefix", "ReadTimeout"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NoError(t, health.Config{Source: newFake()}.Validate(), "empty optional fields are valid")
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		name     string
		mount    func(e *echo.Echo) health.Routes
		prefix   string
		wantPath string
	}{
		{name: "default", mount: func(e *echo.Echo) health.Routes { return e }, wantPath: "/kafka/health/live"},
		{name: "custom", mount: func(e *echo.Echo) health.Routes { return e }, prefix: "/ops/kafka", wantPath: "/ops/kafka/health/live"},
		{name: "trailing slash", mount: func(e *echo.Echo) health.Routes { return e }, prefix: "/ops/", wantPath: "/ops/health/live"},
		{name: "root", mount: func(e *echo.Echo) health.Routes { return e }, prefix: "/", wantPath: "/health/live"},
		{name: "on a group", mount: func(e *echo.Echo) health.Routes { return e.Group("/internal") }, wantPath: "/internal/kafka/health/live"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			require.NoError(t, health.Register(tt.mount(e), health.Config{Source: newFake(), Prefix: tt.prefix}))
			rec := request(e, http.MethodGet, tt.wantPath, "", "")
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Contains(t, rec.Body.String(), `"alive":true`)
		})
	}
}

func TestRegisterLeavesOtherRoutesAlone(t *testing.T) {
	e := echo.New()
	e.GET("/kafka-docs", func(c echo.Context) error { return c.String(http.StatusOK, "docs") })
	require.NoError(t, health.Register(e, health.Config{Source: newFake()}))

	rec := request(e, http.MethodGet, "/kafka-docs", "", "")
	assert.Equal(t, "docs", rec.Body.String())
	rec = request(e, http.MethodGet, "/elsewhere", "", "")
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestURLs(t *testing.T) {
	want := []string{
		"http://localhost:3000/kafka/health",
		"http://localhost:3000/kafka/health/ready",
		"http://localhost:3000/kafka/health/live",
		"http://localhost:3000/kafka/metrics",
		"http://localhost:3000/kafka/metrics/prometheus",
		"http://localhost:3000/kafka/handlers",
		"http://localhost:3000/kafka/dlq/status",
		"http://localhost:3000/kafka/dlq/reprocess",
		"http://localhost:3000/kafka/dlq/stop",
		"http://localhost:3000/kafka/dlq/messages",
		"http://localhost:3000/kafka/metrics/reset",
		"http://localhost:3000/kafka/dlq/records",
		"http://localhost:3000/kafka/admin/check",
	}
	assert.Equal(t, want, health.Config{}.URLs("http://localhost:3000/"))
	assert.Equal(t, "/ops/health", health.Config{Prefix: "/ops/"}.URLs("")[0])
}

// Every URL that URLs lists is served.
func TestURLsAreServed(t *testing.T) {
	cfg := health.Config{Source: newFake(), Prefix: "/ops", AdminToken: testToken}
	e := echo.New()
	require.NoError(t, health.Register(e, cfg))
	for _, path := range cfg.URLs("") {
		rec := request(e, http.MethodGet, path, "", testToken)
		if rec.Code == http.StatusMethodNotAllowed {
			rec = request(e, http.MethodPost, path, "", testToken)
		}
		assert.NotEqual(t, http.StatusNotFound, rec.Code, path)
		assert.NotEqual(t, http.StatusMethodNotAllowed, rec.Code, path)
	}
}

func TestConfigNeverPrintsTheToken(t *testing.T) {
	cfg := health.Config{Source: newFake(), AdminToken: testToken, ReadTimeout: time.Second}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		out := fmt.Sprintf(verb, cfg)
		assert.NotContains(t, out, testToken, verb)
		assert.NotContains(t, out, fmt.Sprintf("%x", testToken), verb)
		assert.Contains(t, out, "[redacted]", verb)
	}
	assert.NotContains(t, fmt.Sprint(&cfg), testToken)
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("monitoring", "config", cfg)
	assert.NotContains(t, sb.String(), testToken)
	assert.Contains(t, fmt.Sprint(health.Config{}), `AdminToken:""`, "an unset token is shown as unset")
}
