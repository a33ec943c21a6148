package chaos_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretsStayOutOfLogsAndAnswers runs the reference service with SCRAM-
// SHA-512 credentials and an admin token against a broker that requires
// SASL (the embedded one as a process, and the real one when
// KAFKA_TEST_SASL_BROKERS is set), at debug log level, sends it orders that
// succeed, retry and fail, and calls every monitoring endpoint. Neither the
// password nor the token may appear in its logs or in any answer, the admin
// endpoints must refuse requests without the token, and wrong credentials
// must stop the start with an error (naming authentication on real Kafka),
// again without showing the password.
func TestSecretsStayOutOfLogsAndAnswers(t *testing.T) {
	needProcesses(t)
	const user = "chaos-user"
	password := "pw-" + uniq("chaos-secret")
	token := "tok-" + uniq("chaos-admin")

	type target struct {
		kind, brokers, user, password, mechanism string
	}
	targets := []target{}
	{
		b := startBrokerProcessEnv(t, map[string]string{"EMBEDDED_KAFKA_SASL_PASSWORD": password},
			"-port", "0", "-sasl-mechanism", "SCRAM-SHA-512", "-sasl-user", user, "-topics", topicOrderCreated+","+topicOrderProcessed)
		targets = append(targets, target{"embedded", b.Addr, user, password, "SCRAM-SHA-512"})
	}
	if b := os.Getenv("KAFKA_TEST_SASL_BROKERS"); b != "" {
		targets = append(targets, target{"kafka", b, os.Getenv("KAFKA_TEST_SASL_USERNAME"), os.Getenv("KAFKA_TEST_SASL_PASSWORD"), os.Getenv("KAFKA_TEST_SASL_MECHANISM")})
	}
	for _, tg := range targets {
		t.Run(tg.kind, func(t *testing.T) {
			c := &cluster{Brokers: []string{tg.brokers}, Kind: tg.kind, Session: "6000", Heartbeat: "1000"}
			name := uniq("chaos-secure")
			vars := map[string]string{
				"KAFKA_SASL_MECHANISM": tg.mechanism, "KAFKA_SASL_USERNAME": tg.user, "KAFKA_SASL_PASSWORD": tg.password,
				"KAFKA_SSL_ENABLED": "false", "KAFKA_ADMIN_TOKEN": token, "KAFKA_LOG_LEVEL": "debug",
			}
			secrets := []string{tg.password, token}
			svc := c.service(t, name, vars)
			svc.Start()
			svc.WaitReady(90 * time.Second)

			for _, body := range []string{`{"orderId":"s-1"}`, `{"orderId":"s-2","failTimes":1}`, `{"orderId":"s-3","shouldFail":true}`} {
				code, out := svc.Post("/orders", body, "")
				require.Equal(t, http.StatusAccepted, code, "%s", out)
			}
			// order.created may hold records of earlier tests on a shared
			// broker, which this group reads too: wait for this test's own.
			waitUntil(t, 60*time.Second, "the failing order in the DLQ", func() bool {
				code, out := svc.GetAuth("/kafka/dlq/messages?topic=order.created&limit=500", "Bearer "+token)
				return code == http.StatusOK && strings.Contains(string(out), "s-3")
			}, svc)

			// The admin endpoints refuse without the token and with a wrong one.
			for _, auth := range []string{"", "Bearer wrong-" + token, "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token)), token} {
				code, out := svc.Post("/kafka/dlq/reprocess", `{"topic":"order.created"}`, auth)
				assert.Equal(t, http.StatusUnauthorized, code, "reprocess with Authorization %q: %s", auth, out)
				code, out = svc.GetAuth("/kafka/dlq/messages?topic=order.created", auth)
				assert.Equal(t, http.StatusUnauthorized, code, "messages with Authorization %q: %s", auth, out)
				assertNoSecret(t, "a 401 answer", string(out), secrets)
			}
			code, out := svc.GetAuth("/kafka/dlq/messages?topic=order.created&limit=500", "Bearer "+token)
			assert.Equal(t, http.StatusOK, code, "messages with the token: %s", out)
			assert.Contains(t, string(out), "s-3", "the DLQ page shows the failed order")

			// Every answer of the monitoring endpoints.
			for _, path := range []string{"/kafka/health", "/kafka/health/ready", "/kafka/health/live", "/kafka/metrics",
				"/kafka/metrics/prometheus", "/kafka/handlers", "/kafka/dlq/status"} {
				code, out := svc.Get(path)
				// The health endpoints may answer 503 while the group rebalances.
				assert.True(t, code == http.StatusOK || code == http.StatusServiceUnavailable, "%s: %d %s", path, code, out)
				assertNoSecret(t, "GET "+path, string(out), secrets)
			}
			code, _ = svc.Terminate(30 * time.Second)
			assert.Equal(t, 0, code, "exit code after SIGTERM")
			logs := svc.Logs()
			assert.Contains(t, logs, "Message stored in the DLQ", "the logs cover the failure path")
			assertNoSecret(t, "the service log", logs, secrets)

			// Wrong credentials: the start fails, with a clear error.
			wrong := "wrong-" + tg.password
			vars["KAFKA_SASL_PASSWORD"] = wrong
			bad := c.service(t, uniq("chaos-wrongpw"), vars)
			exit, elapsed, log := bad.RunToExit(90 * time.Second)
			assert.NotEqual(t, 0, exit, "a start with a wrong password must fail; log:\n%s", tail(log, 20))
			assertNoSecret(t, "the log of the failed start", log, []string{wrong, tg.password, token})
			// The reference service prints a start failure on several
			// lines: "orders service failed:" and the error below it.
			failure := ""
			if i := strings.LastIndex(log, "orders service failed"); i >= 0 {
				failure = strings.Join(strings.Fields(log[i:]), " ")
			}
			if tg.kind == "kafka" {
				assert.Contains(t, strings.ToLower(failure), "authentication", "the error names authentication")
			} else {
				// The embedded broker closes the connection on a failed
				// SASL exchange instead of answering with an error code.
				assert.NotEmpty(t, failure, "the start failure is logged")
			}
			report(t, result{
				Scenario: "security/" + tg.kind, Broker: tg.kind,
				Injected: "SCRAM-SHA-512 password and admin token set, debug logs, every endpoint called, admin calls without/with a wrong token, a start with a wrong password",
				Notes:    fmt.Sprintf("secrets in logs or answers: 0; admin without the token: 401; wrong password: exit %d after %s: %s", exit, elapsed.Round(time.Millisecond), failure),
				Took:     "-",
			})
		})
	}
}

func assertNoSecret(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(text, form) {
				t.Errorf("%s shows a secret (%d characters)", where, len(s))
			}
		}
	}
}

// lastLine returns the last line of log that contains substr.
func lastLine(log, substr string) string {
	out := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			out = l
		}
	}
	return out
}

// Post posts a JSON body with an optional Authorization header.
func (s *service) Post(path, body, auth string) (int, []byte) {
	return s.do(http.MethodPost, path, body, auth)
}

// GetAuth is Get with an Authorization header.
func (s *service) GetAuth(path, auth string) (int, []byte) {
	return s.do(http.MethodGet, path, "", auth)
}

func (s *service) do(method, path, body, auth string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// RunToExit runs the service when it is expected to stop on its own, and
// returns its exit code, how long it ran and its log.
func (s *service) RunToExit(timeout time.Duration) (int, time.Duration, string) {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(s.t, err)
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins(s.t).Orders)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	_ = cmd.Run()
	require.NoError(s.t, ctx.Err(), "the service did not stop within %s", timeout)
	return cmd.ProcessState.ExitCode(), time.Since(start), s.Logs()
}
