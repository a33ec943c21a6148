package kafkaevents_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

func probe(t *testing.T, srv *httptest.Server, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func monitor(t *testing.T, s *kafkaevents.Stack) *httptest.Server {
	e := echo.New()
	hc := health.DefaultConfig
	hc.Source = s
	require.NoError(t, health.Register(e, hc))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func TestReadinessWithBrokerUp(t *testing.T) {
	env := newEnv(t)
	topic := uniq("ready")
	env.createTopics(t, 1, topic)
	rn := start(t, env.baseConfig("ready"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Ready.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	srv := monitor(t, rn.Stack)
	require.Eventually(t, func() bool {
		code, _ := probe(t, srv, "/kafka/health/ready")
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "ready once the group has its assignment")
	code, body := probe(t, srv, "/kafka/health")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "healthy", body["status"])

	// Once the router stops, the service is no longer ready but still alive.
	rn.Stop()
	code, body = probe(t, srv, "/kafka/health/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	code, _ = probe(t, srv, "/kafka/health/live")
	assert.Equal(t, http.StatusOK, code)
}

// TestReadinessFollowsBrokerOutage stops and restarts a real broker of its
// own (the shared one keeps serving the other tests): readiness goes 503
// while liveness stays 200, and comes back without restarting the service.
func TestReadinessFollowsBrokerOutage(t *testing.T) {
	script := os.Getenv("KAFKA_LOCAL_SCRIPT")
	if script == "" {
		t.Skip("needs real Kafka: KAFKA_LOCAL_SCRIPT is set by make test-kafka")
	}
	base := 31000 + int(time.Now().UnixNano()%500)*4
	kenv := append(os.Environ(),
		fmt.Sprintf("KAFKA_LOCAL_PORT=%d", base),
		fmt.Sprintf("KAFKA_LOCAL_SASL_PORT=%d", base+1),
		fmt.Sprintf("KAFKA_LOCAL_CONTROLLER_PORT=%d", base+2),
		fmt.Sprintf("KAFKA_LOCAL_SASL_SSL_PORT=%d", base+3),
		"KAFKA_LOCAL_DIR="+t.TempDir(),
	)
	run := func(args ...string) {
		cmd := exec.Command(script, args...)
		cmd.Env = kenv
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v: %s", script, args, out)
	}
	run("up")
	t.Cleanup(func() { run("down") })

	env := &testEnv{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", base)}, Real: true}
	topic := uniq("outage")
	env.createTopics(t, 1, topic)
	rn := start(t, env.baseConfig("outage"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Outage.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	srv := monitor(t, rn.Stack)
	ready := func(want int) {
		t.Helper()
		require.Eventually(t, func() bool {
			code, _ := probe(t, srv, "/kafka/health/ready")
			return code == want
		}, 90*time.Second, 250*time.Millisecond, "readiness %d", want)
	}
	ready(http.StatusOK)

	run("stop")
	stopped := time.Now()
	ready(http.StatusServiceUnavailable)
	code, _ := probe(t, srv, "/kafka/health/live")
	assert.Equal(t, http.StatusOK, code, "liveness never depends on Kafka")
	t.Logf("readiness went 503 %s after the broker stopped", time.Since(stopped).Round(time.Millisecond))

	run("start")
	restarted := time.Now()
	ready(http.StatusOK)
	t.Logf("readiness back to 200 %s after the broker started", time.Since(restarted).Round(time.Millisecond))
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "after outage"})
	require.NoError(t, err)
}
