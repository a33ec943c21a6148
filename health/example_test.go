package health_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

// exampleStack stands in for the *kafkaevents.Stack of a service.
func exampleStack() *fakeSource {
	f := newFake()
	f.handlers = []kafkaevents.HandlerInfo{{
		ID: "ship-order", Pattern: "orders.paid",
		Options: kafkaevents.HandlerOptions{DLQ: true, Retry: kafkaevents.RetryOptions{
			Enabled: true, Attempts: 5, BaseDelayMs: 1000, MaxDelayMs: 60000, Backoff: "exponential", Jitter: 0.1,
		}},
	}}
	return f
}

func ExampleRegister() {
	stack := exampleStack() // a *kafkaevents.Stack in a service

	e := echo.New()
	err := health.Register(e, health.Config{
		Source:     stack,
		AdminToken: os.Getenv("KAFKA_ADMIN_TOKEN"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/kafka/handlers", nil))
	fmt.Println(rec.Code)
	fmt.Print(rec.Body.String())
	// Output:
	// 200
	// {"total":1,"handlers":[{"id":"ship-order","pattern":"orders.paid","options":{"retry":{"enabled":true,"attempts":5,"baseDelayMs":1000,"maxDelayMs":60000,"backoff":"exponential","jitter":0.1},"dlq":true}}]}
}

// Without an admin token or middleware the admin endpoints are refused.
func ExampleRegister_adminDisabled() {
	e := echo.New()
	if err := health.Register(e, health.Config{Source: exampleStack()}); err != nil {
		fmt.Println(err)
		return
	}

	rec := httptest.NewRecorder()
	body := strings.NewReader(`{"topic":"orders.paid"}`)
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/kafka/dlq/reprocess", body))
	fmt.Println(rec.Code)
	fmt.Print(rec.Body.String())
	// Output:
	// 403
	// {"error":"admin_disabled","message":"admin endpoints are disabled: set KAFKA_ADMIN_TOKEN (or Config.Monitoring.AdminToken) or pass an admin middleware"}
}

// With a token, admin requests carry it as a bearer token.
func ExampleRegister_adminToken() {
	e := echo.New()
	if err := health.Register(e, health.Config{Source: exampleStack(), AdminToken: "example-token"}); err != nil {
		fmt.Println(err)
		return
	}

	for _, auth := range []string{"", "Bearer example-token"} {
		req := httptest.NewRequest(http.MethodPost, "/kafka/dlq/reprocess", strings.NewReader(`{"topic":"orders.paid","batchSize":50}`))
		if auth != "" {
			req.Header.Set(echo.HeaderAuthorization, auth)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Values(echo.HeaderWWWAuthenticate))
		fmt.Print(rec.Body.String())
	}
	// Output:
	// 401 [Bearer]
	// {"error":"unauthorized","message":"missing bearer token: send the header Authorization: Bearer followed by the admin token"}
	// 202 []
	// {"success":true,"message":"reprocessing of the DLQ records of orders.paid started"}
}

func ExampleConfig_URLs() {
	cfg := health.Config{Prefix: "/ops/kafka"}
	for _, u := range cfg.URLs("http://localhost:3000")[:3] {
		fmt.Println(u)
	}
	// Output:
	// http://localhost:3000/ops/kafka/health
	// http://localhost:3000/ops/kafka/health/ready
	// http://localhost:3000/ops/kafka/health/live
}

// NewServer gives the server of the endpoints (and of the rest of the
// service) timeouts, so that slow and idle clients cannot hold it.
func ExampleNewServer() {
	e := echo.New()
	if err := health.Register(e, health.Config{Source: exampleStack()}); err != nil {
		fmt.Println(err)
		return
	}
	srv := health.NewServer(":3000", e)
	// go srv.ListenAndServe(); stop it with srv.Shutdown(ctx).
	fmt.Println(srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	// Output: 5s 15s 30s 1m0s 65536
}
