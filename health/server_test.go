package health_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

func TestNewServerSettings(t *testing.T) {
	s := health.NewServer(":0", http.NotFoundHandler())
	assert.Equal(t, health.ServerReadHeaderTimeout, s.ReadHeaderTimeout)
	assert.Equal(t, health.ServerReadTimeout, s.ReadTimeout)
	assert.Equal(t, health.ServerWriteTimeout, s.WriteTimeout)
	assert.Equal(t, health.ServerIdleTimeout, s.IdleTimeout)
	assert.Equal(t, health.ServerMaxHeaderBytes, s.MaxHeaderBytes)

	own := &http.Server{ReadHeaderTimeout: time.Second}
	health.SetServerDefaults(own)
	assert.Equal(t, time.Second, own.ReadHeaderTimeout, "a value already set is kept")
	assert.Equal(t, health.ServerIdleTimeout, own.IdleTimeout)
}

// TestSlowClientsAreDisconnected opens connections that send half a request
// and nothing more. The server closes every one of them once the header
// timeout passes, and the goroutines that served them end.
func TestSlowClientsAreDisconnected(t *testing.T) {
	const (
		clients       = 100
		headerTimeout = 500 * time.Millisecond
	)
	var closed atomic.Int32 // connections the server closed
	srv := &http.Server{
		Handler: newServer(t, newFake(), health.Config{}), ReadHeaderTimeout: headerTimeout,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed.Add(1)
			}
		},
	}
	health.SetServerDefaults(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = io.WriteString(c, "GET /kafka/health HTTP/1.1\r\nHost: local")
		require.NoError(t, err)
		conns[i] = c
	}
	began := time.Now()
	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err := io.ReadAll(c) // returns when the server closes the connection
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept a slow connection open for 10 s")
	}
	took := time.Since(began)
	t.Logf("%d slow connections closed %s after they sent half a request (header timeout %s)", clients, took.Round(time.Millisecond), headerTimeout)
	assert.Less(t, took, headerTimeout+2*time.Second)
	// The server's side is gone too: each connection reached StateClosed,
	// which net/http enters when the connection's goroutine ends.
	assert.Eventually(t, func() bool { return closed.Load() == clients }, 5*time.Second, 10*time.Millisecond,
		"the server closed its side of every slow connection")
}

func TestHeadOnHealthEndpoints(t *testing.T) {
	srv := httptest.NewServer(newServer(t, newFake(), health.Config{}))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/kafka/health", "/kafka/health/ready", "/kafka/health/live"} {
		t.Run(path, func(t *testing.T) {
			get, err := http.Get(srv.URL + path)
			require.NoError(t, err)
			_ = get.Body.Close()
			head, err := http.Head(srv.URL + path)
			require.NoError(t, err)
			body, err := io.ReadAll(head.Body)
			require.NoError(t, err)
			_ = head.Body.Close()
			assert.Equal(t, get.StatusCode, head.StatusCode)
			assert.Equal(t, get.Header.Get("Content-Type"), head.Header.Get("Content-Type"))
			assert.Empty(t, body)
		})
	}
}

func TestNosniffOnEveryAnswer(t *testing.T) {
	e := adminServer(t, newFake())
	for _, tc := range []struct{ method, path, token string }{
		{http.MethodGet, "/kafka/health", ""},
		{http.MethodGet, "/kafka/health/ready", ""},
		{http.MethodGet, "/kafka/health/live", ""},
		{http.MethodGet, "/kafka/metrics", ""},
		{http.MethodGet, "/kafka/metrics/prometheus", ""},
		{http.MethodGet, "/kafka/handlers", ""},
		{http.MethodGet, "/kafka/dlq/status", ""},
		{http.MethodGet, "/kafka/dlq/messages?topic=orders.paid", ""},                // 401
		{http.MethodGet, "/kafka/dlq/messages?topic=orders.paid", testToken},         // 200
		{http.MethodGet, "/kafka/dlq/messages?topic=orders.paid&limit=x", testToken}, // 400
		{http.MethodPost, "/kafka/dlq/reprocess", testToken},
		{http.MethodPost, "/kafka/dlq/stop", testToken},
		{http.MethodPost, "/kafka/metrics/reset", testToken},
	} {
		rec := request(e, tc.method, tc.path, "", tc.token)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), "%s %s answered %d", tc.method, tc.path, rec.Code)
	}
}

// TestOversizedBodyOverTheWire sends the admin endpoints a body over the
// limit through a real server, with and without a Content-Length: 413.
func TestOversizedBodyOverTheWire(t *testing.T) {
	srv := httptest.NewServer(adminServer(t, newFake()))
	t.Cleanup(srv.Close)
	big := `{"topic":"orders.paid","x":"` + strings.Repeat("a", 100<<10) + `"}`
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if chunked {
			body = io.MultiReader(strings.NewReader(big)) // no length known: chunked
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/kafka/dlq/reprocess", body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "chunked %v", chunked)
	}
}

func TestBrowseBase64AndUnknownReason(t *testing.T) {
	f := newFake()
	payload := []byte{0xff, 0x00, 'o', 0xc3}
	f.page = dlq.Page{Total: 1, Records: []dlq.BrowsedRecord{{
		Headers: map[string]string{"x-dlq-reason": "made-up"}, Reason: dlq.UnknownReason,
		Preview: string(payload), PayloadSize: len(payload),
	}}}
	e := adminServer(t, f)
	rec := request(e, http.MethodGet, "/kafka/dlq/messages?topic=orders.paid&encoding=base64", "", testToken)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var page struct {
		Encoding string `json:"encoding"`
		Records  []struct {
			Preview string            `json:"preview"`
			Reason  string            `json:"reason"`
			Headers map[string]string `json:"headers"`
		} `json:"records"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	assert.Equal(t, "base64", page.Encoding)
	require.Len(t, page.Records, 1)
	got, err := base64.StdEncoding.DecodeString(page.Records[0].Preview)
	require.NoError(t, err)
	assert.Equal(t, payload, got, "the payload's bytes, none lost")
	assert.Equal(t, "unknown", page.Records[0].Reason)
	assert.Equal(t, "made-up", page.Records[0].Headers["x-dlq-reason"], "the raw header stays visible")

	rec = request(e, http.MethodGet, "/kafka/dlq/messages?topic=orders.paid&encoding=hex", "", testToken)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
}
