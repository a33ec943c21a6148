package health_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
)

// FuzzReprocessBody posts arbitrary bodies to the reprocess endpoint: the
// answer is never a 5xx, is always JSON, and a 202 only follows options that
// the endpoint validated.
func FuzzReprocessBody(f *testing.F) {
	// The seed corpus is testdata/fuzz/FuzzReprocessBody.
	src := newFake()
	e := echo.New()
	if err := health.Register(e, health.Config{Source: src, AdminToken: testToken}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/kafka/dlq/reprocess", bytes.NewReader(body))
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+testToken)
		before := len(src.Started())
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON for %q: %s", body, rec.Body)
		}
		started := src.Started()
		switch rec.Code {
		case http.StatusAccepted:
			if len(started) != before+1 {
				t.Fatalf("202 without a started run for %q", body)
			}
			checkOptions(t, started[len(started)-1])
		case http.StatusBadRequest:
			if len(started) != before {
				t.Fatalf("400 after starting a run for %q", body)
			}
		default:
			t.Fatalf("unexpected status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func checkOptions(t *testing.T, o dlq.ReprocessOptions) {
	t.Helper()
	if o.Topic == "" || o.BatchSize < 0 || o.Timeout < 0 || o.Timeout > 24*time.Hour {
		t.Fatalf("invalid options passed on: %+v", o)
	}
}
