package health

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/bounded"
)

type metricsBody struct {
	Timestamp string                     `json:"timestamp"`
	Handlers  handlerSummary             `json:"handlers"`
	Retry     retryMetrics               `json:"retry"`
	DLQ       dlqMetrics                 `json:"dlq"`
	Lag       []kafkaevents.PartitionLag `json:"lag"`
	LagError  string                     `json:"lagError,omitempty"`
	// Concurrency is present when the Status reports it (a Stack does).
	Concurrency *kafkaevents.ConcurrencyStats `json:"concurrency,omitempty"`
	// KeyOrder is present when some handler keeps key order.
	KeyOrder *kafkaevents.KeyOrderStats `json:"keyOrder,omitempty"`
	// HandoffTransactions is present when the hand-offs are exactly once.
	HandoffTransactions *kafkaevents.HandoffTransactionStats `json:"handoffTransactions,omitempty"`
}

// transactionSource is the optional method of a Status that reports the
// exactly-once hand-off transactions.
type transactionSource interface {
	HandoffTransactions() *kafkaevents.HandoffTransactionStats
}

// concurrencySource is the optional method of a Status that reports the
// handling of records within partitions.
type concurrencySource interface {
	ConcurrencyStats() kafkaevents.ConcurrencyStats
}

type handlerSummary struct {
	Registered int      `json:"registered"`
	Patterns   []string `json:"patterns"`
}

// retryMetrics is delayedretry.Stats with the retry settings in front and
// the lateness in milliseconds.
type retryMetrics struct {
	Enabled bool     `json:"enabled"`
	Topics  []string `json:"topics"`
	Running bool     `json:"running"`
	delayedretry.HandlerStats
	Handlers map[string]delayedretry.HandlerStats `json:"handlers"`
	Lateness lateness                             `json:"lateness"`
	// Lanes is the backlog of each retry topic; LanesError says why it is
	// empty when the broker calls failed.
	Lanes      []kafkaevents.RetryLane `json:"lanes"`
	LanesError string                  `json:"lanesError,omitempty"`
}

type lateness struct {
	Count int64   `json:"count"`
	Early int64   `json:"early"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// dlqMetrics is dlq.Stats with the DLQ settings in front.
type dlqMetrics struct {
	Enabled      bool   `json:"enabled"`
	Topic        string `json:"topic"`
	Reprocessing bool   `json:"reprocessing"`
	dlq.Stats
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// metrics is GET {prefix}/metrics. A Lag error (or ReadTimeout running out)
// is reported in lagError with an empty lag list; the answer is still 200.
func (h *endpoints) metrics(c echo.Context) error {
	infos := h.status.Handlers()
	patterns := []string{}
	for i := range infos {
		if p := infos[i].Pattern; p != "" && !slices.Contains(patterns, p) {
			patterns = append(patterns, p)
		}
	}
	slices.Sort(patterns)

	rs := h.status.RetryStats()
	retry := retryMetrics{
		Enabled:      h.status.RetryEnabled(),
		Topics:       nonNil(h.status.RetryTopics()),
		Running:      h.status.RetryRunning(),
		HandlerStats: rs.HandlerStats,
		Handlers:     nonNilMap(rs.Handlers),
		Lateness: lateness{
			Count: rs.Lateness.Count, Early: rs.Lateness.Early,
			P50Ms: millis(rs.Lateness.P50), P99Ms: millis(rs.Lateness.P99), MaxMs: millis(rs.Lateness.Max),
		},
	}
	ds := h.status.DLQStats()
	ds.ByReason, ds.ByTopic = nonNilMap(ds.ByReason), nonNilMap(ds.ByTopic)
	dlqm := dlqMetrics{Enabled: h.status.DLQEnabled(), Topic: h.status.DLQTopic(), Reprocessing: h.status.ReprocessActive(), Stats: ds}

	body := metricsBody{
		Timestamp: h.now(),
		Handlers:  handlerSummary{Registered: len(infos), Patterns: patterns},
		Retry:     retry,
		DLQ:       dlqm,
	}
	if cs, ok := h.status.(concurrencySource); ok {
		st := cs.ConcurrencyStats()
		body.Concurrency = &st
	}
	if ks, ok := h.status.(keyOrderSource); ok {
		body.KeyOrder = ks.KeyOrderStats()
	}
	if ts, ok := h.status.(transactionSource); ok {
		body.HandoffTransactions = ts.HandoffTransactions()
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.ReadTimeout)
	defer cancel()
	lags, err := bounded.Call(ctx, h.status.Lag)
	switch {
	case err != nil && ctx.Err() != nil:
		body.Lag, body.LagError = []kafkaevents.PartitionLag{}, fmt.Sprintf("lag did not finish within %s", h.cfg.ReadTimeout)
	case err != nil:
		body.Lag, body.LagError = []kafkaevents.PartitionLag{}, err.Error()
	default:
		body.Lag = nonNil(lags)
	}
	body.Retry.Lanes, body.Retry.LanesError = h.retryLanes(c.Request().Context())
	return c.JSON(http.StatusOK, body)
}

// retryLanes calls RetryLanes, bounded by ReadTimeout like Lag.
func (h *endpoints) retryLanes(ctx context.Context) ([]kafkaevents.RetryLane, string) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	defer cancel()
	lanes, err := bounded.Call(ctx, h.status.RetryLanes)
	switch {
	case err != nil && ctx.Err() != nil:
		return []kafkaevents.RetryLane{}, fmt.Sprintf("retry lanes did not finish within %s", h.cfg.ReadTimeout)
	case err != nil:
		return []kafkaevents.RetryLane{}, err.Error()
	}
	return nonNil(lanes), ""
}

// prometheus is GET {prefix}/metrics/prometheus: the Source's registry in
// the text exposition format, or in OpenMetrics (which carries the
// exemplars) when the scraper asks for it.
func (h *endpoints) prometheus(c echo.Context) error {
	h.scrapeOnce.Do(func() {
		if g := h.status.Gatherer(); g != nil {
			h.scrape = promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
		}
	})
	if h.scrape == nil {
		return newError(http.StatusServiceUnavailable, codeUnavailable, "no Prometheus registry")
	}
	h.scrape.ServeHTTP(c.Response(), c.Request())
	return nil
}

type handlersBody struct {
	Total    int                       `json:"total"`
	Handlers []kafkaevents.HandlerInfo `json:"handlers"`
}

// handlers is GET {prefix}/handlers, sorted by handler ID.
func (h *endpoints) handlers(c echo.Context) error {
	infos := slices.Clone(nonNil(h.status.Handlers()))
	slices.SortFunc(infos, func(a, b kafkaevents.HandlerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return c.JSON(http.StatusOK, handlersBody{Total: len(infos), Handlers: infos})
}

// dlqStatus is GET {prefix}/dlq/status.
func (h *endpoints) dlqStatus(c echo.Context) error {
	s := h.status.ReprocessStatus()
	s.Running, s.Last = nonNil(s.Running), nonNilMap(s.Last)
	return c.JSON(http.StatusOK, s)
}

// nonNil and nonNilMap make empty collections encode as [] and {}, not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
