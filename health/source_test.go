package health_test

import (
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/health"
)

// methodsOf returns the method names of the interface T.
func methodsOf[T any]() []string {
	typ := reflect.TypeFor[T]()
	names := make([]string, typ.NumMethod())
	for i := range names {
		names[i] = typ.Method(i).Name
	}
	return names
}

// TestSourceSplitsStatusAndAdmin checks that Source is Status and Admin and
// nothing more, and that no method is in both.
func TestSourceSplitsStatusAndAdmin(t *testing.T) {
	status, admin := methodsOf[health.Status](), methodsOf[health.Admin]()
	for _, m := range status {
		assert.NotContains(t, admin, m, "%s is in both Status and Admin", m)
	}
	assert.ElementsMatch(t, methodsOf[health.Source](), append(slices.Clone(status), admin...))
}

// TestEndpointsCallOnlyTheirSide serves every endpoint and checks that the
// open ones call only Status methods and the admin ones only Admin methods.
func TestEndpointsCallOnlyTheirSide(t *testing.T) {
	status, admin := methodsOf[health.Status](), methodsOf[health.Admin]()
	tests := []struct {
		name, method, target, body string
		allowed                    []string
	}{
		{name: "health", method: http.MethodGet, target: "/kafka/health", allowed: status},
		{name: "ready", method: http.MethodGet, target: "/kafka/health/ready", allowed: status},
		{name: "metrics", method: http.MethodGet, target: "/kafka/metrics", allowed: status},
		{name: "prometheus", method: http.MethodGet, target: "/kafka/metrics/prometheus", allowed: status},
		{name: "handlers", method: http.MethodGet, target: "/kafka/handlers", allowed: status},
		{name: "dlq status", method: http.MethodGet, target: "/kafka/dlq/status", allowed: status},
		{name: "console config", method: http.MethodGet, target: "/kafka/ui/config.json", allowed: status},
		{name: "reprocess", method: http.MethodPost, target: "/kafka/dlq/reprocess", body: `{"topic":"orders.paid"}`, allowed: admin},
		{name: "stop", method: http.MethodPost, target: "/kafka/dlq/stop", allowed: admin},
		{name: "messages", method: http.MethodGet, target: "/kafka/dlq/messages?topic=orders.paid", allowed: admin},
		{name: "reset", method: http.MethodPost, target: "/kafka/metrics/reset", allowed: admin},
		{name: "records", method: http.MethodGet, target: "/kafka/dlq/records?topic=orders.paid", allowed: admin},
		{name: "record", method: http.MethodGet, target: "/kafka/dlq/records/0/7", allowed: admin},
		{name: "record reprocess", method: http.MethodPost, target: "/kafka/dlq/records/0/7/reprocess", allowed: admin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			e := adminServer(t, f)

			rec := request(e, tt.method, tt.target, tt.body, testToken)

			require.Less(t, rec.Code, 300, rec.Body.String())
			calls := f.Calls()
			require.NotEmpty(t, calls, "the endpoint called nothing: is the fake still wired?")
			for _, c := range calls {
				assert.Contains(t, tt.allowed, c, "%s %s called %s", tt.method, tt.target, c)
			}
		})
	}
}
