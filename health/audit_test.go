package health_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
	"github.com/torix/kafkaevents/kafkatest"
)

func TestAuditLogsEveryAdminRequestOnce(t *testing.T) {
	t.Parallel()
	f := newFake()
	log := &auditLog{}
	e := newServer(t, f, health.Config{AdminToken: testToken, Logger: log})

	tests := []struct {
		name, method, target, body, token string
		want                              []string
	}{
		{name: "reprocess", method: http.MethodPost, target: "/kafka/dlq/reprocess", body: `{"topic":"orders"}`, token: testToken,
			want: []string{`"action":"dlq.reprocess"`, `"target":"topic=orders"`, `"result":"ok"`, `"status":202`, `"remote_addr":"192.0.2.1"`, `"at":"2025-03-14T15:09:26.535Z"`}},
		{name: "refused", method: http.MethodPost, target: "/kafka/dlq/stop", body: `{"topic":"orders"}`, token: "wrong-token",
			want: []string{`"action":"dlq.stop"`, `"target":"topic=orders"`, `"result":"unauthorized"`, `"status":401`}},
		{name: "one record", method: http.MethodPost, target: "/kafka/dlq/records/0/7/reprocess", token: testToken,
			want: []string{`"action":"dlq.reprocess_record"`, `"target":"record=0/7"`, `"result":"ok"`}},
		{name: "missing record", method: http.MethodGet, target: "/kafka/dlq/records/3/9", token: testToken,
			want: []string{`"action":"dlq.record"`, `"target":"record=3/9"`, `"result":"not_found"`, `"status":404`}},
		{name: "reset", method: http.MethodPost, target: "/kafka/metrics/reset?component=dlq", token: testToken,
			want: []string{`"action":"metrics.reset"`, `"target":"component=dlq"`, `"result":"ok"`}},
		{name: "browse", method: http.MethodGet, target: "/kafka/dlq/messages?topic=orders", token: testToken,
			want: []string{`"action":"dlq.browse"`, `"target":"topic=orders"`}},
		{name: "search", method: http.MethodGet, target: "/kafka/dlq/records?topic=orders&reason=permanent", token: testToken,
			want: []string{`"action":"dlq.search"`, `"target":"topic=orders reason=permanent"`}},
		{name: "sign-in", method: http.MethodGet, target: "/kafka/admin/check", token: testToken,
			want: []string{`"action":"admin.sign_in"`, `"result":"ok"`, `"status":204`}},
		{name: "forged line", method: http.MethodGet, target: "/kafka/dlq/records?topic=a%0Aaction%3Dfake", token: testToken,
			want: []string{`"target":"topic=\"a\\naction=fake\""`}},
	}
	for _, tt := range tests {
		before := len(log.all())
		rec := request(e, tt.method, tt.target, tt.body, tt.token)
		lines := log.all()[before:]
		require.Len(t, lines, 1, "%s: one line per request", tt.name)
		for _, w := range tt.want {
			assert.Contains(t, lines[0], w, tt.name)
		}
		assert.NotContains(t, lines[0], testToken, tt.name)
		assert.NotContains(t, lines[0], "wrong-token", tt.name)
		if tt.name == "reprocess" {
			require.Equal(t, http.StatusAccepted, rec.Code, "the handler still reads the body: %s", rec.Body.String())
			assert.Equal(t, "orders", f.Started()[0].Topic)
		}
	}

	before := len(log.all())
	request(e, http.MethodGet, "/kafka/health", "", "")
	request(e, http.MethodGet, "/kafka/ui/", "", "")
	assert.Len(t, log.all(), before, "open endpoints are not audited")
	assert.NotContains(t, strings.Join(log.all(), "\n"), "Bearer")
}

// With Config.Logger unset, the audit lines go to the logger of the stack
// (kafkaevents.WithLogger), so that they have the service's log format; a
// Config.Logger that is set takes them instead.
func TestAuditDefaultsToTheStackLogger(t *testing.T) {
	brokers := []string(nil)
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	} else {
		brokers = kafkatest.New(t).Addrs()
	}
	stackLogs := &auditLog{}
	stack, err := kafkaevents.New(kafkaevents.Config{ClientID: "audit-logger", Brokers: brokers}, kafkaevents.WithLogger(stackLogs))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stack.Close() })
	var _ health.LoggerSource = stack

	tests := []struct {
		name      string
		logger    *auditLog
		wantStack int
	}{
		{name: "unset", wantStack: 1},
		{name: "set", logger: &auditLog{}, wantStack: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := health.Config{Source: stack, AdminToken: testToken}
			if tt.logger != nil {
				cfg.Logger = tt.logger
			}
			e := echo.New()
			require.NoError(t, health.Register(e, cfg))
			before := auditLines(stackLogs)

			rec := request(e, http.MethodGet, "/kafka/admin/check", "", testToken)

			require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
			got := auditLines(stackLogs)[len(before):]
			require.Len(t, got, tt.wantStack, "audit lines in the stack's log")
			if tt.wantStack > 0 {
				assert.Contains(t, got[0], `"action":"admin.sign_in"`)
			}
			if tt.logger != nil {
				assert.Len(t, auditLines(tt.logger), 1, "audit lines in Config.Logger")
			}
		})
	}
}

// auditLines returns the audit lines of l, without the other lines a stack
// logs to it.
func auditLines(l *auditLog) []string {
	var out []string
	for _, line := range l.all() {
		if strings.HasPrefix(line, "admin action ") {
			out = append(out, line)
		}
	}
	return out
}
