package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
)

// Source is what the endpoints report on and operate: a Status for the open
// endpoints and an Admin for the admin endpoints. *kafkaevents.Stack
// implements it.
type Source interface {
	Status
	Admin
}

// Status is what the open endpoints read: health, readiness, metrics, the
// handlers and the reprocessing status. Its methods change nothing.
// *kafkaevents.Stack implements it.
type Status interface {
	// ServiceName is the service the stack belongs to.
	ServiceName() string
	// ProducerConnected reports, without a network call, whether the
	// producer's client is open and knows a broker.
	ProducerConnected() bool
	// RetryEnabled and RetryRunning report whether delayed retries are
	// configured and whether the retry-topic consumer is consuming.
	RetryEnabled() bool
	RetryRunning() bool
	// RetryTopics lists the retry topics.
	RetryTopics() []string
	// RetryStats is a snapshot of the retry counters.
	RetryStats() delayedretry.Stats
	// DLQEnabled reports whether the DLQ is configured; DLQTopic names it.
	DLQEnabled() bool
	DLQTopic() string
	// DLQStats is a snapshot of the DLQ counters.
	DLQStats() dlq.Stats
	// Handlers lists the registered handlers.
	Handlers() []kafkaevents.HandlerInfo
	// Readiness runs the readiness checks. The endpoint bounds ctx with
	// Config.ReadTimeout and stops waiting when it ends.
	Readiness(ctx context.Context) kafkaevents.Readiness
	// RetryLanes returns the backlog of each retry topic. The endpoint
	// bounds ctx with Config.ReadTimeout and stops waiting when it ends.
	RetryLanes(ctx context.Context) ([]kafkaevents.RetryLane, error)
	// Lag returns the consumer lag per partition. The endpoint bounds ctx
	// with Config.ReadTimeout and stops waiting when it ends.
	Lag(ctx context.Context) ([]kafkaevents.PartitionLag, error)
	// ReprocessActive reports whether any run is in progress.
	ReprocessActive() bool
	// ReprocessStatus lists the runs in progress and the last result per
	// topic.
	ReprocessStatus() dlq.Status
	// Gatherer is the registry served by {prefix}/metrics/prometheus.
	Gatherer() prometheus.Gatherer
}

// Admin is what the admin endpoints call: they read DLQ records, payloads
// included, and change state. Register puts them behind Config.AdminToken
// or Config.AdminMiddleware. *kafkaevents.Stack implements it.
type Admin interface {
	// BrowseDLQ lists the DLQ records of topic. It returns an error wrapping
	// dlq.ErrInvalidBrowse, kafkaevents.ErrUnknownTopic or
	// kafkaevents.ErrDLQDisabled.
	BrowseDLQ(ctx context.Context, topic string, limit, offset int) (dlq.Page, error)
	// SearchDLQ lists the DLQ records that match q (dlq.Browser.Search).
	// It returns an error wrapping dlq.ErrInvalidBrowse,
	// kafkaevents.ErrUnknownTopic or kafkaevents.ErrDLQDisabled.
	SearchDLQ(ctx context.Context, q dlq.Query) (dlq.Page, error)
	// DLQRecord reads one DLQ record in full. It returns an error wrapping
	// dlq.ErrRecordNotFound or kafkaevents.ErrDLQDisabled.
	DLQRecord(ctx context.Context, partition int32, offset int64) (dlq.Detail, error)
	// StartReprocess starts a reprocessing run in the background. It
	// returns dlq.ErrAlreadyRunning, an error wrapping dlq.ErrInvalidOptions,
	// kafkaevents.ErrUnknownTopic or kafkaevents.ErrDLQDisabled.
	StartReprocess(opts dlq.ReprocessOptions) error
	// StopReprocess stops the run of topic ("" stops every run) and returns
	// how many runs it stopped.
	StopReprocess(topic string) int
	// ReprocessRecord hands one DLQ record to its handler, as a run of its
	// topic would. It returns an error wrapping dlq.ErrRecordNotFound,
	// kafkaevents.ErrDLQDisabled or the error that kept the record from its
	// handler.
	ReprocessRecord(ctx context.Context, partition int32, offset int64) (dlq.RecordResult, error)
	// ResetMetrics zeroes the counters of "all", "retry" or "dlq"; anything
	// else is kafkaevents.ErrUnknownComponent.
	ResetMetrics(component string) error
}

// LoggerSource is implemented by a Source that has a logger of its own.
// *kafkaevents.Stack implements it. When Config.Logger is unset and the
// Source is a LoggerSource, the audit log goes to its Logger, so that the
// audit lines have the format of the service's other logs. It is not part of
// Source: a Source without it logs to slog.Default().
type LoggerSource interface {
	// Logger is the logger the audit log uses by default. A nil Logger
	// counts as none.
	Logger() watermill.LoggerAdapter
}

// Routes is where Register adds its routes. *echo.Echo and *echo.Group both
// implement it.
type Routes interface {
	Group(prefix string, m ...echo.MiddlewareFunc) *echo.Group
}

// Config configures the endpoints.
type Config struct {
	// Source is the stack the endpoints report on and operate, usually a
	// *kafkaevents.Stack: the open endpoints call only its Status methods,
	// the admin endpoints only its Admin methods. Required.
	Source Source
	// Prefix is the path under which the endpoints are mounted; it must
	// start with "/". A trailing "/" is ignored, so "/" mounts them at the
	// root. Optional. Default: "/kafka".
	Prefix string
	// AdminToken, when set, is the bearer token the admin endpoints require
	// ("Authorization: Bearer <token>"). It is compared in constant time and
	// is never logged; formatting a Config with the fmt package prints
	// "[redacted]" in its place. Optional. Default: none.
	AdminToken string
	// AdminMiddleware, when set, authenticates the admin endpoints with the
	// application's own scheme. With AdminToken also set, both must pass:
	// the token is checked first. An error it returns is written as JSON
	// like every other error of the endpoints. Optional. Default: none.
	//
	// With neither AdminToken nor AdminMiddleware the admin endpoints answer
	// 403 admin_disabled.
	AdminMiddleware echo.MiddlewareFunc
	// ReadTimeout bounds the Readiness call of {prefix}/health/ready and the
	// Lag call of {prefix}/metrics. When it runs out the readiness probe
	// answers 503 and the metrics carry a lagError. Optional. Default: 2s.
	ReadTimeout time.Duration
	// Now is the clock of the timestamps in the responses. Optional.
	// Default: time.Now.
	Now func() time.Time
	// UI turns the operator console at {prefix}/ui/ on or off. Optional.
	// Default (nil): on.
	UI *bool
	// TraceURL, when set, links each DLQ record shown by the console to its
	// trace: "{traceId}" in it is replaced by the record's trace ID, as in
	// "https://jaeger.example/trace/{traceId}". Optional. Default: no links.
	TraceURL string
	// Logger receives the audit log: one line per admin request, naming the
	// action, its topic or record, the remote address and the result, never
	// the token. Optional. Default: the Source's Logger when the Source is a
	// LoggerSource (a *kafkaevents.Stack is: its WithLogger logger), or else
	// slog.Default() through watermill.NewSlogLogger.
	Logger watermill.LoggerAdapter
}

// DefaultConfig holds the defaults that Register applies to unset fields.
var DefaultConfig = Config{Prefix: "/kafka", ReadTimeout: 2 * time.Second}

// Validate reports a missing Source, a Prefix that does not start with "/"
// and a negative ReadTimeout. Empty optional fields are valid: Register
// replaces them with the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Source == nil {
		errs = append(errs, errors.New("health: Config.Source is required"))
	}
	if c.Prefix != "" && !strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("health: Config.Prefix %q must start with \"/\"", c.Prefix))
	}
	if c.TraceURL != "" && !strings.Contains(c.TraceURL, "{traceId}") {
		errs = append(errs, fmt.Errorf("health: Config.TraceURL %q must contain {traceId}", c.TraceURL))
	}
	if c.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("health: Config.ReadTimeout %s must not be negative (0 means the default, %s)", c.ReadTimeout, DefaultConfig.ReadTimeout))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultConfig.Prefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultConfig.ReadTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		if ls, ok := c.Source.(LoggerSource); ok {
			c.Logger = ls.Logger()
		}
	}
	if c.Logger == nil {
		c.Logger = watermill.NewSlogLogger(slog.Default())
	}
}

func (c Config) uiEnabled() bool { return c.UI == nil || *c.UI }

func (c Config) adminEnabled() bool { return c.AdminToken != "" || c.AdminMiddleware != nil }

// Endpoint paths, relative to the prefix.
const (
	pathHealth     = "/health"
	pathReady      = "/health/ready"
	pathLive       = "/health/live"
	pathMetrics    = "/metrics"
	pathPrometheus = "/metrics/prometheus"
	pathHandlers   = "/handlers"
	pathDLQStatus  = "/dlq/status"
	pathReprocess  = "/dlq/reprocess"
	pathStop       = "/dlq/stop"
	pathMessages   = "/dlq/messages"
	pathReset      = "/metrics/reset"
)

var allPaths = []string{
	pathHealth, pathReady, pathLive, pathMetrics, pathPrometheus, pathHandlers, pathDLQStatus,
	pathReprocess, pathStop, pathMessages, pathReset, pathRecords, pathAdminCheck,
}

// URLs returns the URL of every endpoint, base followed by the prefix and
// the path, for logging at start: URLs("http://localhost:3000") returns
// "http://localhost:3000/kafka/health" and so on, open endpoints first. A
// trailing "/" of base is ignored. The admin endpoints are listed even when
// they are disabled; those with a DLQ partition and offset in their path
// are not, nor is the console (see ConsoleURL).
func (c Config) URLs(base string) []string {
	c.setDefaults()
	base = strings.TrimRight(base, "/")
	out := make([]string, len(allPaths))
	for i, p := range allPaths {
		out[i] = base + c.Prefix + p
	}
	return out
}

// ConsoleURL returns the URL of the operator console, base followed by the
// prefix and "/ui/", or "" when Config.UI is false. A trailing "/" of base
// is ignored.
func (c Config) ConsoleURL(base string) string {
	if !c.uiEnabled() {
		return ""
	}
	c.setDefaults()
	return strings.TrimRight(base, "/") + c.Prefix + pathUI + "/"
}

// Format implements fmt.Formatter so that printing a Config with any verb
// never shows AdminToken.
func (c Config) Format(f fmt.State, _ rune) {
	token := ""
	if c.AdminToken != "" {
		token = "[redacted]"
	}
	ui := "default"
	if c.UI != nil {
		ui = fmt.Sprint(*c.UI)
	}
	_, _ = fmt.Fprintf(f, "health.Config{Source:%T Prefix:%q AdminToken:%q AdminMiddleware:%t ReadTimeout:%s Now:%t UI:%s TraceURL:%q Logger:%t}",
		c.Source, c.Prefix, token, c.AdminMiddleware != nil, c.ReadTimeout, c.Now != nil, ui, c.TraceURL, c.Logger != nil)
}
