package health_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

// adminCalls are the admin endpoints, each with a request that succeeds
// when authorised and the Source method it reaches.
var adminCalls = []struct {
	method, target, body string
	wantCode             int
	reaches              string
}{
	{http.MethodPost, "/kafka/dlq/reprocess", `{"topic":"orders.paid"}`, http.StatusAccepted, "StartReprocess"},
	{http.MethodPost, "/kafka/dlq/stop", "", http.StatusOK, "StopReprocess"},
	{http.MethodGet, "/kafka/dlq/messages?topic=orders.paid", "", http.StatusOK, "BrowseDLQ"},
	{http.MethodPost, "/kafka/metrics/reset", "", http.StatusOK, "ResetMetrics"},
}

func TestAdminDisabled(t *testing.T) {
	for _, call := range adminCalls {
		t.Run(call.target, func(t *testing.T) {
			f := newFake()
			e := newServer(t, f, health.Config{})

			rec := request(e, call.method, call.target, call.body, "any-token")

			require.Equal(t, http.StatusForbidden, rec.Code)
			assert.JSONEq(t, `{"error":"admin_disabled","message":"admin endpoints are disabled: set KAFKA_ADMIN_TOKEN (or Config.Monitoring.AdminToken) or pass an admin middleware"}`, rec.Body.String())
			assert.NotContains(t, f.Calls(), call.reaches)
		})
	}
}

func TestAdminToken(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
		wantCode      int // 0: the endpoint's success code
		wantChallenge string
	}{
		{name: "no header", wantCode: http.StatusUnauthorized, wantChallenge: "Bearer"},
		{name: "empty bearer", authorization: "Bearer ", wantCode: http.StatusUnauthorized, wantChallenge: "Bearer"},
		{name: "other scheme", authorization: "Basic " + testToken, wantCode: http.StatusUnauthorized, wantChallenge: "Bearer"},
		{name: "token without scheme", authorization: testToken, wantCode: http.StatusUnauthorized, wantChallenge: "Bearer"},
		{name: "wrong token", authorization: "Bearer nope", wantCode: http.StatusUnauthorized, wantChallenge: `Bearer error="invalid_token"`},
		{name: "token prefix", authorization: "Bearer " + testToken[:5], wantCode: http.StatusUnauthorized, wantChallenge: `Bearer error="invalid_token"`},
		{name: "token with suffix", authorization: "Bearer " + testToken + "x", wantCode: http.StatusUnauthorized, wantChallenge: `Bearer error="invalid_token"`},
		{name: "right token", authorization: "Bearer " + testToken},
		{name: "scheme is case-insensitive", authorization: "bearer " + testToken},
	}
	for _, call := range adminCalls {
		for _, tt := range tests {
			t.Run(call.target+"/"+tt.name, func(t *testing.T) {
				f := newFake()
				e := adminServer(t, f)
				req := newRequest(call.method, call.target, call.body)
				if tt.authorization != "" {
					req.Header.Set(echo.HeaderAuthorization, tt.authorization)
				}
				rec := serve(e, req)

				if tt.wantCode == 0 {
					require.Equal(t, call.wantCode, rec.Code, rec.Body.String())
					assert.Contains(t, f.Calls(), call.reaches)
					return
				}
				require.Equal(t, tt.wantCode, rec.Code)
				assert.Equal(t, tt.wantChallenge, rec.Header().Get(echo.HeaderWWWAuthenticate))
				code, msg := errorOf(t, rec)
				assert.Equal(t, "unauthorized", code)
				assert.NotContains(t, msg, testToken)
				assert.NotContains(t, f.Calls(), call.reaches)
			})
		}
	}
}

func TestOpenEndpointsNeedNoToken(t *testing.T) {
	e := adminServer(t, newFake())
	for _, target := range []string{
		"/kafka/health", "/kafka/health/ready", "/kafka/health/live", "/kafka/metrics",
		"/kafka/metrics/prometheus", "/kafka/handlers", "/kafka/dlq/status",
	} {
		rec := request(e, http.MethodGet, target, "", "")
		assert.Equal(t, http.StatusOK, rec.Code, target)
	}
}

// userAuth is an AdminMiddleware that lets requests with X-User: admin in.
func userAuth(calls *int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			*calls++
			if c.Request().Header.Get("X-User") != "admin" {
				return echo.NewHTTPError(http.StatusForbidden, "admins only")
			}
			return next(c)
		}
	}
}

func TestAdminMiddleware(t *testing.T) {
	tests := []struct {
		name          string
		token         string
		user          string
		bearer        string
		wantCode      int
		wantError     string
		wantMWCalls   int
		wantReachesFn bool
	}{
		{name: "middleware only, allowed", user: "admin", wantCode: http.StatusAccepted, wantMWCalls: 1, wantReachesFn: true},
		{name: "middleware only, refused", user: "guest", wantCode: http.StatusForbidden, wantError: "forbidden", wantMWCalls: 1},
		{name: "middleware only ignores bearer tokens", user: "guest", bearer: testToken, wantCode: http.StatusForbidden, wantError: "forbidden", wantMWCalls: 1},
		{name: "both, both pass", token: testToken, bearer: testToken, user: "admin", wantCode: http.StatusAccepted, wantMWCalls: 1, wantReachesFn: true},
		{name: "both, token missing", token: testToken, user: "admin", wantCode: http.StatusUnauthorized, wantError: "unauthorized"},
		{name: "both, middleware refuses", token: testToken, bearer: testToken, user: "guest", wantCode: http.StatusForbidden, wantError: "forbidden", wantMWCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			var mwCalls int
			e := newServer(t, f, health.Config{AdminToken: tt.token, AdminMiddleware: userAuth(&mwCalls)})
			req := newRequest(http.MethodPost, "/kafka/dlq/reprocess", `{"topic":"orders.paid"}`)
			req.Header.Set("X-User", tt.user)
			if tt.bearer != "" {
				req.Header.Set(echo.HeaderAuthorization, "Bearer "+tt.bearer)
			}
			rec := serve(e, req)

			require.Equal(t, tt.wantCode, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantMWCalls, mwCalls)
			assert.Equal(t, tt.wantReachesFn, len(f.Started()) == 1)
			if tt.wantError != "" {
				code, _ := errorOf(t, rec)
				assert.Equal(t, tt.wantError, code)
			}
		})
	}
}

func TestErrorsAreJSONWhateverTheErrorHandler(t *testing.T) {
	tests := []struct {
		name        string
		mw          echo.MiddlewareFunc
		wantCode    int
		wantBody    string
		wantNoLeaks string
	}{
		{
			name: "HTTPError with a message",
			mw: func(echo.HandlerFunc) echo.HandlerFunc {
				return func(echo.Context) error { return echo.NewHTTPError(http.StatusUnauthorized, "session expired") }
			},
			wantCode: http.StatusUnauthorized,
			wantBody: `{"error":"unauthorized","message":"session expired"}`,
		},
		{
			name: "HTTPError without a message",
			mw: func(echo.HandlerFunc) echo.HandlerFunc {
				return func(echo.Context) error { return echo.ErrTooManyRequests }
			},
			wantCode: http.StatusTooManyRequests,
			wantBody: `{"error":"too_many_requests","message":"Too Many Requests"}`,
		},
		{
			name: "plain error",
			mw: func(echo.HandlerFunc) echo.HandlerFunc {
				return func(echo.Context) error { return errors.New("ldap: connection to 10.0.0.7 refused") }
			},
			wantCode:    http.StatusInternalServerError,
			wantBody:    `{"error":"internal_error","message":"internal server error"}`,
			wantNoLeaks: "10.0.0.7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			e.HTTPErrorHandler = func(_ error, c echo.Context) { _ = c.String(http.StatusTeapot, "not ours") }
			require.NoError(t, health.Register(e, health.Config{Source: newFake(), AdminMiddleware: tt.mw}))

			rec := request(e, http.MethodPost, "/kafka/metrics/reset", "", "")

			require.Equal(t, tt.wantCode, rec.Code)
			assert.JSONEq(t, tt.wantBody, rec.Body.String())
			if tt.wantNoLeaks != "" {
				assert.NotContains(t, rec.Body.String(), tt.wantNoLeaks)
			}
		})
	}
}

func TestReprocess(t *testing.T) {
	tests := []struct {
		name string
		body string
		want dlq.ReprocessOptions
	}{
		{name: "topic only", body: `{"topic":"orders.paid"}`, want: dlq.ReprocessOptions{Topic: "orders.paid"}},
		{
			name: "every option",
			body: `{"topic":"orders.paid","batchSize":25,"timeoutMs":1500,"stopOnError":true}`,
			want: dlq.ReprocessOptions{Topic: "orders.paid", BatchSize: 25, Timeout: 1500 * time.Millisecond, StopOnError: true},
		},
		{
			name: "24h timeout is the maximum",
			body: `{"topic":"orders.paid","timeoutMs":86400000}`,
			want: dlq.ReprocessOptions{Topic: "orders.paid", Timeout: 24 * time.Hour},
		},
		{
			name: "nulls mean defaults",
			body: `{"topic":"orders.paid","batchSize":null,"timeoutMs":null,"stopOnError":null}`,
			want: dlq.ReprocessOptions{Topic: "orders.paid"},
		},
		{name: "whitespace around the object", body: " \n{\"topic\":\"orders.paid\"}\n ", want: dlq.ReprocessOptions{Topic: "orders.paid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/reprocess", tt.body, testToken)

			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			assert.JSONEq(t, `{"success":true,"message":"reprocessing of the DLQ records of orders.paid started"}`, rec.Body.String())
			assert.Equal(t, []dlq.ReprocessOptions{tt.want}, f.Started())
		})
	}
}

func TestReprocessBadBody(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantMsg  string // a part of the message
	}{
		{name: "empty body", body: "", wantCode: "invalid_body", wantMsg: "empty"},
		{name: "malformed JSON", body: `{"topic":`, wantCode: "invalid_body", wantMsg: "malformed"},
		{name: "syntax error", body: `{"topic" "x"}`, wantCode: "invalid_body", wantMsg: "malformed"},
		{name: "not an object", body: `["orders.paid"]`, wantCode: "invalid_body", wantMsg: "JSON object"},
		{name: "null", body: `null`, wantCode: "invalid_body", wantMsg: "JSON object"},
		{name: "topic is a number", body: `{"topic":1}`, wantCode: "invalid_body", wantMsg: "topic: want a string"},
		{name: "batchSize is a string", body: `{"topic":"orders.paid","batchSize":"x"}`, wantCode: "invalid_body", wantMsg: "batchSize: want an integer"},
		{name: "batchSize is a fraction", body: `{"topic":"orders.paid","batchSize":1.5}`, wantCode: "invalid_body", wantMsg: "batchSize"},
		{name: "batchSize overflows", body: `{"topic":"orders.paid","batchSize":1e40}`, wantCode: "invalid_body", wantMsg: "batchSize"},
		{name: "timeoutMs is a string", body: `{"topic":"orders.paid","timeoutMs":"30s"}`, wantCode: "invalid_body", wantMsg: "timeoutMs: want an integer"},
		{name: "stopOnError is a string", body: `{"topic":"orders.paid","stopOnError":"yes"}`, wantCode: "invalid_body", wantMsg: "stopOnError: want a boolean"},
		{name: "unknown field", body: `{"topic":"orders.paid","batch":10}`, wantCode: "invalid_body", wantMsg: `unknown field "batch"`},
		{name: "trailing data", body: `{"topic":"orders.paid"} {"topic":"orders.created"}`, wantCode: "invalid_body", wantMsg: "after the JSON object"},
		{name: "trailing garbage", body: `{"topic":"orders.paid"}}`, wantCode: "invalid_body", wantMsg: "after the JSON object"},
		{name: "missing topic", body: `{"batchSize":10}`, wantCode: "invalid_options", wantMsg: "topic is required"},
		{name: "empty topic", body: `{"topic":""}`, wantCode: "invalid_options", wantMsg: "topic is required"},
		{name: "blank topic", body: `{"topic":"  "}`, wantCode: "invalid_options", wantMsg: "topic is required"},
		{name: "zero batchSize", body: `{"topic":"orders.paid","batchSize":0}`, wantCode: "invalid_options", wantMsg: "batchSize = 0"},
		{name: "negative batchSize", body: `{"topic":"orders.paid","batchSize":-5}`, wantCode: "invalid_options", wantMsg: "batchSize = -5"},
		{name: "zero timeoutMs", body: `{"topic":"orders.paid","timeoutMs":0}`, wantCode: "invalid_options", wantMsg: "timeoutMs = 0"},
		{name: "negative timeoutMs", body: `{"topic":"orders.paid","timeoutMs":-1000}`, wantCode: "invalid_options", wantMsg: "timeoutMs = -1000"},
		{name: "timeoutMs over 24h", body: `{"topic":"orders.paid","timeoutMs":86400001}`, wantCode: "invalid_options", wantMsg: "24h"},
		{name: "timeoutMs that would overflow a Duration", body: `{"topic":"orders.paid","timeoutMs":9223372036854775807}`, wantCode: "invalid_options", wantMsg: "24h"},
		{
			name:     "oversized body",
			body:     `{"topic":"orders.paid","x":"` + strings.Repeat("a", 64<<10) + `"}`,
			wantCode: "body_too_large", wantMsg: "65536",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/reprocess", tt.body, testToken)

			want := http.StatusBadRequest
			if tt.wantCode == "body_too_large" {
				want = http.StatusRequestEntityTooLarge
			}
			require.Equal(t, want, rec.Code, rec.Body.String())
			code, msg := errorOf(t, rec)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, msg, tt.wantMsg)
			assert.NotContains(t, f.Calls(), "StartReprocess")
		})
	}
}

func TestReprocessBodyAtTheLimit(t *testing.T) {
	prefix, suffix := `{"topic":"orders.paid"}`, ""
	body := prefix + strings.Repeat(" ", 64<<10-len(prefix)-len(suffix))
	require.Len(t, body, 64<<10)
	f := newFake()
	rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/reprocess", body, testToken)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
}

func TestReprocessSourceErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantErr  string
	}{
		{name: "unknown topic", err: fmt.Errorf("%w: %q", kafkaevents.ErrUnknownTopic, "nope"), wantCode: http.StatusBadRequest, wantErr: "unknown_topic"},
		{name: "already running", err: fmt.Errorf("%w: orders.paid", dlq.ErrAlreadyRunning), wantCode: http.StatusConflict, wantErr: "already_running"},
		{name: "DLQ disabled", err: kafkaevents.ErrDLQDisabled, wantCode: http.StatusConflict, wantErr: "dlq_disabled"},
		{name: "invalid options", err: fmt.Errorf("%w: batchSize", dlq.ErrInvalidOptions), wantCode: http.StatusBadRequest, wantErr: "invalid_options"},
		{name: "closed", err: dlq.ErrClosed, wantCode: http.StatusServiceUnavailable, wantErr: "unavailable"},
		{name: "anything else", err: errors.New("kafka: client has run out of available brokers"), wantCode: http.StatusInternalServerError, wantErr: "internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.startErr = tt.err
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/reprocess", `{"topic":"orders.paid"}`, testToken)

			require.Equal(t, tt.wantCode, rec.Code, rec.Body.String())
			code, msg := errorOf(t, rec)
			assert.Equal(t, tt.wantErr, code)
			assert.Equal(t, tt.err.Error(), msg)
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		stopN     int
		wantTopic string
		wantMsg   string
	}{
		{name: "empty body stops all", body: "", stopN: 2, wantTopic: "", wantMsg: "stopped 2 run(s)"},
		{name: "empty object stops all", body: `{}`, stopN: 0, wantTopic: "", wantMsg: "stopped 0 run(s)"},
		{name: "one topic", body: `{"topic":"orders.paid"}`, stopN: 1, wantTopic: "orders.paid", wantMsg: "stopped 1 run(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.stopN = tt.stopN
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/stop", tt.body, testToken)

			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, fmt.Sprintf(`{"success":true,"message":%q}`, tt.wantMsg), rec.Body.String())
			assert.Equal(t, []string{tt.wantTopic}, f.Stopped())
		})
	}
}

func TestStopBadBody(t *testing.T) {
	for _, body := range []string{`{"topic":`, `{"topic":1}`, `{"topics":["a"]}`, `"orders.paid"`, `{"topic":"a"}x`, `{"x":"` + strings.Repeat("a", 64<<10) + `"}`} {
		t.Run(body[:min(len(body), 20)], func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/dlq/stop", body, testToken)
			want := http.StatusBadRequest
			if len(body) > 64<<10 {
				want = http.StatusRequestEntityTooLarge
			}
			require.Equal(t, want, rec.Code, rec.Body.String())
			errorOf(t, rec)
			assert.Empty(t, f.Stopped())
		})
	}
}

func TestMessages(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  browseCall
	}{
		{name: "defaults", query: "topic=orders.paid", want: browseCall{Topic: "orders.paid", Limit: 50, Offset: 0}},
		{name: "explicit", query: "topic=orders.paid&limit=500&offset=20", want: browseCall{Topic: "orders.paid", Limit: 500, Offset: 20}},
		{name: "limit 1", query: "topic=orders.paid&limit=1", want: browseCall{Topic: "orders.paid", Limit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodGet, "/kafka/dlq/messages?"+tt.query, "", testToken)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, []browseCall{tt.want}, f.Browsed())
			assert.JSONEq(t, fmt.Sprintf(`{"topic":%q,"offset":%d,"limit":%d,"total":0,"records":[],"encoding":"text"}`, tt.want.Topic, tt.want.Offset, tt.want.Limit), rec.Body.String())
		})
	}
}

func TestMessagesPage(t *testing.T) {
	f := newFake()
	f.page = dlq.Page{Total: 3, Records: []dlq.BrowsedRecord{{
		Partition: 1, Offset: 7, Timestamp: time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC), Key: "o-1",
		Headers: map[string]string{"x-dlq-reason": "retries_exhausted"}, Reason: "retries_exhausted",
		HandlerID: "ship-order", ErrorMessage: "carrier down", ReprocessCount: 1,
		Preview: `{"id":"o-1"}`, PayloadSize: 12,
	}}}
	rec := request(adminServer(t, f), http.MethodGet, "/kafka/dlq/messages?topic=orders.paid&limit=1&offset=2", "", testToken)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"topic":"orders.paid","offset":2,"limit":1,"total":3,"encoding":"text","records":[{
		"partition":1,"offset":7,"timestamp":"2025-03-14T15:00:00Z","key":"o-1",
		"headers":{"x-dlq-reason":"retries_exhausted"},"reason":"retries_exhausted","handlerId":"ship-order",
		"errorMessage":"carrier down","reprocessCount":1,"preview":"{\"id\":\"o-1\"}","payloadSize":12,"truncated":false}]}`, rec.Body.String())
}

func TestMessagesBadQuery(t *testing.T) {
	tests := []struct{ name, query, wantMsg string }{
		{name: "no topic", query: "limit=10", wantMsg: "topic is required"},
		{name: "empty topic", query: "topic=", wantMsg: "topic is required"},
		{name: "limit not a number", query: "topic=orders.paid&limit=ten", wantMsg: `limit = "ten"`},
		{name: "limit zero", query: "topic=orders.paid&limit=0", wantMsg: "limit = 0"},
		{name: "limit negative", query: "topic=orders.paid&limit=-1", wantMsg: "limit = -1"},
		{name: "limit too large", query: "topic=orders.paid&limit=501", wantMsg: "limit = 501"},
		{name: "limit overflows", query: "topic=orders.paid&limit=99999999999999999999", wantMsg: "limit"},
		{name: "offset not a number", query: "topic=orders.paid&offset=1.5", wantMsg: `offset = "1.5"`},
		{name: "offset negative", query: "topic=orders.paid&offset=-1", wantMsg: "offset = -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodGet, "/kafka/dlq/messages?"+tt.query, "", testToken)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			code, msg := errorOf(t, rec)
			assert.Equal(t, "invalid_query", code)
			assert.Contains(t, msg, tt.wantMsg)
			assert.Empty(t, f.Browsed())
		})
	}
}

func TestMessagesSourceErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantErr  string
	}{
		{name: "unknown topic", err: kafkaevents.ErrUnknownTopic, wantCode: http.StatusBadRequest, wantErr: "unknown_topic"},
		{name: "invalid browse", err: fmt.Errorf("%w: limit", dlq.ErrInvalidBrowse), wantCode: http.StatusBadRequest, wantErr: "invalid_query"},
		{name: "DLQ disabled", err: kafkaevents.ErrDLQDisabled, wantCode: http.StatusConflict, wantErr: "dlq_disabled"},
		{name: "broker failure", err: errors.New("dlq: partitions of orders.dlq: EOF"), wantCode: http.StatusInternalServerError, wantErr: "internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.browseErr = tt.err
			rec := request(adminServer(t, f), http.MethodGet, "/kafka/dlq/messages?topic=orders.paid", "", testToken)
			require.Equal(t, tt.wantCode, rec.Code, rec.Body.String())
			code, _ := errorOf(t, rec)
			assert.Equal(t, tt.wantErr, code)
		})
	}
}

func TestReset(t *testing.T) {
	tests := []struct{ query, want string }{
		{query: "", want: "all"},
		{query: "?component=all", want: "all"},
		{query: "?component=retry", want: "retry"},
		{query: "?component=dlq", want: "dlq"},
	}
	for _, tt := range tests {
		t.Run(tt.want+tt.query, func(t *testing.T) {
			f := newFake()
			rec := request(adminServer(t, f), http.MethodPost, "/kafka/metrics/reset"+tt.query, "", testToken)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, `{"success":true,"message":"metrics reset: `+tt.want+`"}`, rec.Body.String())
			assert.Equal(t, []string{tt.want}, f.Resets())
		})
	}
}

func TestResetUnknownComponent(t *testing.T) {
	f := newFake()
	f.resetErr = fmt.Errorf("%w: %q", kafkaevents.ErrUnknownComponent, "cache")
	rec := request(adminServer(t, f), http.MethodPost, "/kafka/metrics/reset?component=cache", "", testToken)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	code, msg := errorOf(t, rec)
	assert.Equal(t, "unknown_component", code)
	assert.Contains(t, msg, "cache")
}
