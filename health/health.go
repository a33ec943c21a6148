package health

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/internal/bounded"
)

// timeFormat is RFC 3339 in UTC with milliseconds, as JavaScript's
// Date.toISOString writes it.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// endpoints holds what the handlers need: the open endpoints read status,
// the admin endpoints call admin. Both are Config.Source.
type endpoints struct {
	cfg    Config
	status Status
	admin  Admin
	// scrape serves the Gatherer of status, built once, at the first
	// scrape; nil when it has none.
	scrape     http.Handler
	scrapeOnce sync.Once
}

// Register adds the endpoints to r under cfg.Prefix. It returns an error,
// and adds nothing, when cfg is invalid (see Config.Validate). The group it
// creates carries no middleware of its own, so requests outside the
// endpoints are untouched.
func Register(r Routes, cfg Config) error {
	if r == nil {
		return fmt.Errorf("health: Register needs an *echo.Echo or *echo.Group, got nil")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	h := &endpoints{cfg: cfg, status: cfg.Source, admin: cfg.Source}
	g := r.Group(cfg.Prefix)

	// HEAD answers like GET, without the body (net/http drops it), for
	// the uptime checkers that probe with HEAD.
	for path, fn := range map[string]echo.HandlerFunc{pathHealth: h.health, pathReady: h.ready, pathLive: h.live} {
		g.GET(path, fn, respond)
		g.HEAD(path, fn, respond)
	}
	g.GET(pathMetrics, h.metrics, respond)
	g.GET(pathPrometheus, h.prometheus, respond)
	g.GET(pathHandlers, h.handlers, respond)
	g.GET(pathDLQStatus, h.dlqStatus, respond)

	admin := h.adminChain()
	g.POST(pathReprocess, h.reprocess, admin...)
	g.POST(pathStop, h.stop, admin...)
	g.GET(pathMessages, h.messages, admin...)
	g.POST(pathReset, h.reset, admin...)
	h.registerKeyOrder(g, admin)
	return h.registerConsole(g, admin)
}

func (h *endpoints) now() string { return h.cfg.Now().UTC().Format(timeFormat) }

// Health states.
const (
	statusHealthy   = "healthy"
	statusDegraded  = "degraded"
	statusUnhealthy = "unhealthy"
)

type healthBody struct {
	Status     string           `json:"status"`
	Timestamp  string           `json:"timestamp"`
	Components healthComponents `json:"components"`
}

type healthComponents struct {
	Producer struct {
		Connected bool `json:"connected"`
	} `json:"producer"`
	Retry struct {
		Running bool `json:"running"`
		Enabled bool `json:"enabled"`
	} `json:"retry"`
	DLQ struct {
		Reprocessing bool `json:"reprocessing"`
		Enabled      bool `json:"enabled"`
	} `json:"dlq"`
	Handlers struct {
		Registered int `json:"registered"`
	} `json:"handlers"`
}

// health is GET {prefix}/health. It answers from in-memory state only:
// unhealthy (503) without a connected producer; degraded (200) when retries
// are enabled but their consumer is not running, or no handler is
// registered; healthy (200) otherwise.
func (h *endpoints) health(c echo.Context) error {
	var comp healthComponents
	comp.Producer.Connected = h.status.ProducerConnected()
	comp.Retry.Enabled = h.status.RetryEnabled()
	comp.Retry.Running = h.status.RetryRunning()
	comp.DLQ.Enabled = h.status.DLQEnabled()
	comp.DLQ.Reprocessing = h.status.ReprocessActive()
	comp.Handlers.Registered = len(h.status.Handlers())

	body := healthBody{Status: statusHealthy, Timestamp: h.now(), Components: comp}
	code := http.StatusOK
	switch {
	case !comp.Producer.Connected:
		body.Status, code = statusUnhealthy, http.StatusServiceUnavailable
	case comp.Retry.Enabled && !comp.Retry.Running, comp.Handlers.Registered == 0:
		body.Status = statusDegraded
	}
	return c.JSON(code, body)
}

type readyBody struct {
	Ready    bool              `json:"ready"`
	Checks   readyChecks       `json:"checks"`
	Errors   map[string]string `json:"errors,omitempty"`
	Warnings map[string]string `json:"warnings,omitempty"`
}

type readyChecks struct {
	Producer bool `json:"producer"`
	Handlers bool `json:"handlers"`
	Consumer bool `json:"consumer"`
}

// ready is GET {prefix}/health/ready: 200 when every readiness check passed,
// 503 otherwise, including when the checks did not finish within
// ReadTimeout.
func (h *endpoints) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.ReadTimeout)
	defer cancel()
	r, err := bounded.Call(ctx, func(ctx context.Context) (kafkaevents.Readiness, error) {
		return h.status.Readiness(ctx), nil
	})
	if err != nil {
		errs := map[string]string{"readiness": err.Error()}
		if ctx.Err() != nil {
			errs = map[string]string{codeTimeout: fmt.Sprintf("readiness checks did not finish within %s", h.cfg.ReadTimeout)}
		}
		return c.JSON(http.StatusServiceUnavailable, readyBody{Errors: errs})
	}
	body := readyBody{
		Ready:  r.Ready(),
		Checks: readyChecks{Producer: r.Producer, Handlers: r.Handlers, Consumer: r.Consumer},
		Errors: r.Errors, Warnings: r.Warnings,
	}
	if len(body.Errors) == 0 {
		body.Errors = nil
	}
	code := http.StatusOK
	if !body.Ready {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, body)
}

type liveBody struct {
	Alive     bool   `json:"alive"`
	Timestamp string `json:"timestamp"`
}

// live is GET {prefix}/health/live. It calls nothing on the stack.
func (h *endpoints) live(c echo.Context) error {
	return c.JSON(http.StatusOK, liveBody{Alive: true, Timestamp: h.now()})
}
