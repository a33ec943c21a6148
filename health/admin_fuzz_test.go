package health_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

// FuzzDLQMessagesQuery sends arbitrary query strings to GET
// /kafka/dlq/messages: the answer is never a 5xx and always JSON, a 200
// browses with exactly the topic, limit and offset of the query and only
// within bounds, and a 400 browses nothing. The seed corpus is
// testdata/fuzz/FuzzDLQMessagesQuery.
func FuzzDLQMessagesQuery(f *testing.F) {
	src := newFake()
	e := echo.New()
	if err := health.Register(e, health.Config{Source: src, AdminToken: testToken}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/kafka/dlq/messages", nil)
		req.URL.RawQuery = rawQuery
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+testToken)
		before := len(src.Browsed())
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, rawQuery, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON for %q: %s", rawQuery, rec.Body)
		}
		browsed := src.Browsed()
		switch rec.Code {
		case http.StatusOK:
			if len(browsed) != before+1 {
				t.Fatalf("200 without a browse for %q", rawQuery)
			}
			got := browsed[len(browsed)-1]
			q, _ := url.ParseQuery(rawQuery)
			want := browseCall{Topic: q.Get("topic"), Limit: 50}
			if s := q.Get("limit"); s != "" {
				want.Limit, _ = strconv.Atoi(s)
			}
			if s := q.Get("offset"); s != "" {
				want.Offset, _ = strconv.Atoi(s)
			}
			if got != want {
				t.Fatalf("query %q browsed %+v, want %+v", rawQuery, got, want)
			}
			if strings.TrimSpace(got.Topic) == "" || got.Limit < 1 || got.Limit > dlq.MaxBrowseLimit || got.Offset < 0 {
				t.Fatalf("query %q browsed out of bounds: %+v", rawQuery, got)
			}
		case http.StatusBadRequest:
			if len(browsed) != before {
				t.Fatalf("400 after a browse for %q", rawQuery)
			}
		default:
			t.Fatalf("unexpected status %d for %q: %s", rec.Code, rawQuery, rec.Body)
		}
	})
}

// FuzzStopBody posts arbitrary bodies to /kafka/dlq/stop: never a 5xx,
// always JSON; a 200 stops the runs of the body's topic (all runs for an
// empty body or topic) and a 400 stops nothing. The seed corpus is
// testdata/fuzz/FuzzStopBody.
func FuzzStopBody(f *testing.F) {
	src := newFake()
	e := echo.New()
	if err := health.Register(e, health.Config{Source: src, AdminToken: testToken}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/kafka/dlq/stop", bytes.NewReader(body))
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+testToken)
		before := len(src.Stopped())
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON for %q: %s", body, rec.Body)
		}
		stopped := src.Stopped()
		switch rec.Code {
		case http.StatusOK:
			if len(stopped) != before+1 {
				t.Fatalf("200 without a stop for %q", body)
			}
			var want struct {
				Topic string `json:"topic"`
			}
			if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
				if err := json.Unmarshal(trimmed, &want); err != nil {
					t.Fatalf("200 for a body that does not decode: %q: %v", body, err)
				}
			}
			if got := stopped[len(stopped)-1]; got != want.Topic {
				t.Fatalf("body %q stopped %q, want %q", body, got, want.Topic)
			}
		case http.StatusBadRequest:
			if len(stopped) != before {
				t.Fatalf("400 after a stop for %q", body)
			}
		default:
			t.Fatalf("unexpected status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzAdminToken sends arbitrary Authorization headers to an admin
// endpoint: only "Bearer" (in any case) followed by the token gets through;
// everything else is a JSON 401 that never echoes the token.
func FuzzAdminToken(f *testing.F) {
	src := newFake()
	e := echo.New()
	if err := health.Register(e, health.Config{Source: src, AdminToken: testToken}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodPost, "/kafka/metrics/reset", nil)
		req.Header.Set(echo.HeaderAuthorization, header)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		scheme, rest, _ := strings.Cut(req.Header.Get(echo.HeaderAuthorization), " ")
		valid := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == testToken
		switch {
		case valid && rec.Code != http.StatusOK:
			t.Fatalf("valid header %q refused: %d %s", header, rec.Code, rec.Body)
		case !valid && rec.Code != http.StatusUnauthorized:
			t.Fatalf("header %q: status %d, want 401: %s", header, rec.Code, rec.Body)
		case !json.Valid(rec.Body.Bytes()):
			t.Fatalf("answer is not JSON for %q: %s", header, rec.Body)
		case !valid && strings.Contains(rec.Body.String()+strings.Join(rec.Header().Values(echo.HeaderWWWAuthenticate), ""), testToken):
			t.Fatalf("the 401 for %q shows the token: %s", header, rec.Body)
		}
	})
}
