package kafkaevents_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
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

// A retry consumer that cannot join its group's session, because another
// member holds the group's rebalance, delivers no retry: readiness says so
// in a warning (the service stays ready: its main topics are consumed), and
// the warning goes once the retry consumer has its session.
func TestReadinessWarnsWhileTheRetryConsumerWaits(t *testing.T) {
	env := newEnv(t)
	topic := uniq("retrywait")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("retrywait")

	// A member of the retry group that keeps its claim past a rebalance,
	// as a member that hangs does, until release is closed.
	withDefaults := cfg
	withDefaults.SetDefaults()
	sc, err := withDefaults.Sarama()
	require.NoError(t, err)
	sc.Consumer.Group.Session.Timeout = 30 * time.Second
	sc.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	hung, err := sarama.NewConsumerGroup(env.Brokers, cfg.Consumer.GroupID+".retry", sc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = hung.Close() })
	claimed, release := make(chan struct{}, 1), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before hung.Close, which waits for the claim
	go func() {
		for t.Context().Err() == nil {
			if err := hung.Consume(t.Context(), []string{topic}, hangingMember{claimed: claimed, release: release}); err != nil {
				return
			}
		}
	}()
	select {
	case <-claimed:
	case <-time.After(30 * time.Second):
		t.Fatal("the hanging member got no claim")
	}

	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "RetryWait.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	var r kafkaevents.Readiness
	require.Eventually(t, func() bool {
		r = rn.Stack.Readiness(t.Context())
		return r.Warnings["retry consumer"] != ""
	}, 30*time.Second, 200*time.Millisecond, "no warning while the retry consumer waits")
	assert.Contains(t, r.Warnings["retry consumer"], cfg.Consumer.GroupID+".retry")
	assert.Contains(t, r.Warnings["retry consumer"], "retries are not delivered")

	releaseOnce()
	require.Eventually(t, func() bool {
		r = rn.Stack.Readiness(t.Context())
		return r.Ready() && r.Warnings["retry consumer"] == ""
	}, 60*time.Second, 200*time.Millisecond, "the warning stays once the retry consumer has joined")
}

// hangingMember is a consumer group handler whose ConsumeClaim returns only
// once release is closed, whatever its session says.
type hangingMember struct{ claimed, release chan struct{} }

func (hangingMember) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (hangingMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h hangingMember) ConsumeClaim(sarama.ConsumerGroupSession, sarama.ConsumerGroupClaim) error {
	select {
	case h.claimed <- struct{}{}:
	default:
	}
	<-h.release
	return nil
}
