package health_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

func TestConsoleServesItsFilesWithStrictHeaders(t *testing.T) {
	t.Parallel()
	e := adminServer(t, newFake())

	rec := request(e, http.MethodGet, "/kafka/ui", "", "")
	assert.Equal(t, http.StatusMovedPermanently, rec.Code)
	assert.Equal(t, "/kafka/ui/", rec.Header().Get(echo.HeaderLocation))

	rec = request(e, http.MethodGet, "/kafka/ui/", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get(echo.HeaderContentType))
	assert.Equal(t, "no-cache", rec.Header().Get(echo.HeaderCacheControl))
	version := regexp.MustCompile(`src="app\.js\?v=([0-9a-f]{12})"`).FindStringSubmatch(rec.Body.String())
	require.Len(t, version, 2, "index.html names app.js with the version: %s", rec.Body.String())

	tests := []struct {
		name, target, contentType, cache string
		status                           int
	}{
		{name: "script, current version", target: "/kafka/ui/app.js?v=" + version[1], status: http.StatusOK,
			contentType: "text/javascript; charset=utf-8", cache: "public, max-age=31536000, immutable"},
		{name: "style, current version", target: "/kafka/ui/style.css?v=" + version[1], status: http.StatusOK,
			contentType: "text/css; charset=utf-8", cache: "public, max-age=31536000, immutable"},
		{name: "script, other version", target: "/kafka/ui/app.js?v=000000000000", status: http.StatusOK,
			contentType: "text/javascript; charset=utf-8", cache: "no-cache"},
		{name: "icon", target: "/kafka/ui/icon.svg", status: http.StatusOK, contentType: "image/svg+xml", cache: "no-cache"},
		{name: "config", target: "/kafka/ui/config.json", status: http.StatusOK, contentType: "application/json", cache: "no-store"},
		{name: "unknown file", target: "/kafka/ui/nope.js", status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := request(e, http.MethodGet, tt.target, "", "")
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			h := rec.Header()
			assert.Equal(t, "nosniff", h.Get(echo.HeaderXContentTypeOptions))
			csp := h.Get("Content-Security-Policy")
			assert.Contains(t, csp, "default-src 'none'")
			assert.Contains(t, csp, "script-src 'self';")
			assert.Contains(t, csp, "frame-ancestors 'none'")
			assert.NotContains(t, csp, "unsafe-inline")
			if tt.status == http.StatusOK {
				assert.True(t, strings.HasPrefix(h.Get(echo.HeaderContentType), tt.contentType), h.Get(echo.HeaderContentType))
				assert.Equal(t, tt.cache, h.Get(echo.HeaderCacheControl))
			}
		})
	}
}

// The console's HTML has no inline script or style (the CSP would block
// them), and its script never writes HTML: data goes in as text.
func TestConsoleFilesHaveNoInlineCodeAndNoHTMLSinks(t *testing.T) {
	t.Parallel()
	err := filepath.WalkDir("ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "style="} {
			assert.NotContains(t, src, sink, "%s", p)
		}
		if strings.HasSuffix(p, ".html") {
			assert.NotRegexp(t, `<script(?:[^>]*)>\s*[^<\s]`, src, "inline script in %s", p)
			assert.NotContains(t, src, "<style", "inline style in %s", p)
			assert.NotContains(t, src, "http", "no external resource in %s", p)
		}
		return nil
	})
	require.NoError(t, err)
}

func TestConsoleConfigSaysHowAdminWorks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       health.Config
		wantAdmin string
		wantHint  bool
	}{
		{name: "token", cfg: health.Config{AdminToken: testToken, TraceURL: "https://jaeger.example/trace/{traceId}"}, wantAdmin: "token"},
		{name: "middleware", cfg: health.Config{AdminMiddleware: func(next echo.HandlerFunc) echo.HandlerFunc { return next }}, wantAdmin: "middleware"},
		{name: "off", cfg: health.Config{}, wantAdmin: "off", wantHint: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := request(newServer(t, newFake(), tt.cfg), http.MethodGet, "/kafka/ui/config.json", "", "")
			require.Equal(t, http.StatusOK, rec.Code)
			assert.NotContains(t, rec.Body.String(), testToken)
			var body struct {
				Admin, AdminHint, TraceURL, Prefix, Service string
				Reasons                                     []string
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantAdmin, body.Admin)
			assert.Equal(t, tt.wantHint, strings.Contains(body.AdminHint, "KAFKA_ADMIN_TOKEN"), body.AdminHint)
			assert.Equal(t, tt.cfg.TraceURL, body.TraceURL)
			assert.Equal(t, "/kafka", body.Prefix)
			assert.Equal(t, "orders", body.Service)
			assert.Contains(t, body.Reasons, "permanent")
		})
	}
}

func TestConsoleCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	cfg := health.Config{AdminToken: testToken, UI: kafkaevents.Bool(false)}
	e := newServer(t, newFake(), cfg)
	for _, target := range []string{"/kafka/ui", "/kafka/ui/", "/kafka/ui/app.js", "/kafka/ui/config.json"} {
		assert.Equal(t, http.StatusNotFound, request(e, http.MethodGet, target, "", "").Code, target)
	}
	assert.Empty(t, cfg.ConsoleURL("http://localhost:3000"))
	assert.Equal(t, "http://localhost:3000/ops/ui/", health.Config{Prefix: "/ops/"}.ConsoleURL("http://localhost:3000/"))

	// Mounted in a group, the redirect keeps the group's prefix.
	grouped := echo.New()
	require.NoError(t, health.Register(grouped.Group("/admin"), health.Config{Source: newFake()}))
	rec := request(grouped, http.MethodGet, "/admin/kafka/ui", "", "")
	assert.Equal(t, http.StatusMovedPermanently, rec.Code)
	assert.Equal(t, "/admin/kafka/ui/", rec.Header().Get(echo.HeaderLocation))
	// The JSON endpoints stay.
	assert.Equal(t, http.StatusOK, request(e, http.MethodGet, "/kafka/dlq/records/0/7", "", testToken).Code)
}

func TestRecordEndpoints(t *testing.T) {
	t.Parallel()
	f := newFake()
	e := adminServer(t, f)
	tests := []struct {
		name, method, target, token string
		status                      int
		code                        string
	}{
		{name: "record without token", method: http.MethodGet, target: "/kafka/dlq/records/0/7", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "record with wrong token", method: http.MethodGet, target: "/kafka/dlq/records/0/7", token: "nope", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "record", method: http.MethodGet, target: "/kafka/dlq/records/0/7", token: testToken, status: http.StatusOK},
		{name: "missing record", method: http.MethodGet, target: "/kafka/dlq/records/0/8", token: testToken, status: http.StatusNotFound, code: "not_found"},
		{name: "negative partition", method: http.MethodGet, target: "/kafka/dlq/records/-1/7", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
		{name: "offset not a number", method: http.MethodGet, target: "/kafka/dlq/records/0/x", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
		{name: "partition too large", method: http.MethodGet, target: "/kafka/dlq/records/4294967296/7", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
		{name: "reprocess without token", method: http.MethodPost, target: "/kafka/dlq/records/0/7/reprocess", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "reprocess", method: http.MethodPost, target: "/kafka/dlq/records/0/7/reprocess", token: testToken, status: http.StatusOK},
		{name: "reprocess missing record", method: http.MethodPost, target: "/kafka/dlq/records/1/7/reprocess", token: testToken, status: http.StatusNotFound, code: "not_found"},
		{name: "check without token", method: http.MethodGet, target: "/kafka/admin/check", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "check", method: http.MethodGet, target: "/kafka/admin/check", token: testToken, status: http.StatusNoContent},
		{name: "search without token", method: http.MethodGet, target: "/kafka/dlq/records", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "search limit", method: http.MethodGet, target: "/kafka/dlq/records?limit=501", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
		{name: "search pending without topic", method: http.MethodGet, target: "/kafka/dlq/records?pending=true", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
		{name: "search pending not a boolean", method: http.MethodGet, target: "/kafka/dlq/records?topic=a&pending=maybe", token: testToken, status: http.StatusBadRequest, code: "invalid_query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := request(e, tt.method, tt.target, "", tt.token)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.code != "" {
				code, _ := errorOf(t, rec)
				assert.Equal(t, tt.code, code)
			}
		})
	}

	rec := request(e, http.MethodGet, "/kafka/dlq/records/0/7", "", testToken)
	var d dlq.Detail
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &d))
	assert.Equal(t, `{"id":1}`, string(d.Payload))
	assert.Contains(t, rec.Body.String(), `"payload":"eyJpZCI6MX0="`, "the payload is base64 in JSON")
	assert.Equal(t, "no-store", rec.Header().Get(echo.HeaderCacheControl))

	rec = request(e, http.MethodPost, "/kafka/dlq/records/0/7/reprocess", "", testToken)
	var res dlq.RecordResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	assert.Equal(t, dlq.OutcomeReprocessed, res.Outcome)

	rec = request(e, http.MethodGet, "/kafka/dlq/records?topic=orders&reason=permanent&handler=Orders.handle&pending=true&limit=5&offset=10", "", testToken)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	f.mu.Lock()
	last := f.searched[len(f.searched)-1]
	f.mu.Unlock()
	assert.Equal(t, dlq.Query{Topic: "orders", Reason: "permanent", HandlerID: "Orders.handle", Pending: true, Limit: 5, Offset: 10}, last)
}
