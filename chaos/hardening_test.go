package chaos_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/wire"
)

// TestSlowClientsAreCut opens 200 connections to the running service that
// send half a request line and nothing more. The service must close every
// one of them once its header timeout (5 s, health.SetServerDefaults) passes,
// and keep answering meanwhile.
func TestSlowClientsAreCut(t *testing.T) {
	needProcesses(t)
	const clients = 200
	c := newCluster(t)
	svc := c.service(t, uniq("chaos-slow"), nil)
	svc.Start()
	addr := strings.TrimPrefix(svc.URL, "http://")
	conns := make([]net.Conn, 0, clients)
	for range clients {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		_, err = io.WriteString(conn, "GET /kafka/health HTT")
		require.NoError(t, err)
		conns = append(conns, conn)
	}
	began := time.Now()
	code, _ := svc.Get("/kafka/health/live")
	assert.Equal(t, http.StatusOK, code, "the service answers while slow clients hold connections")
	held := 0
	for _, conn := range conns {
		_ = conn.SetReadDeadline(began.Add(20 * time.Second))
		_, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			held++
		}
	}
	took := time.Since(began)
	assert.Zero(t, held, "connections still held after 20 s")
	assert.Less(t, took, 10*time.Second, "the slow connections are closed after the 5 s header timeout")
	report(t, result{
		Scenario: "slow-clients/" + c.Kind, Broker: c.Kind,
		Injected: fmt.Sprintf("%d connections sending half a request line", clients),
		Notes:    fmt.Sprintf("still held after 20 s: %d; all closed %s after they were opened", held, took.Round(100*time.Millisecond)),
		Took:     took.Round(100 * time.Millisecond).String(),
	})
}

// TestForgedRetryRecordsKeepMetricsBounded writes 1,000 retry records whose
// x-handler-id and x-original-topic name nothing the service has, as a
// producer with write access to a retry topic could. They must end in the
// DLQ as unroutable, the Prometheus exposition must keep its series count,
// and the log line about them must be rate-limited. Then an idle SIGTERM
// must stop the service at once.
func TestForgedRetryRecordsKeepMetricsBounded(t *testing.T) {
	needProcesses(t)
	const forged = 1000
	c := newCluster(t)
	svc := c.service(t, uniq("chaos-forged"), nil)
	svc.Start()
	svc.WaitReady(90 * time.Second)
	code, out := svc.Post("/orders", `{"orderId":"forged-ok-1"}`, "")
	require.Equal(t, http.StatusAccepted, code, "%s", out)

	series := func() (n, size int) {
		code, body := svc.Get("/kafka/metrics/prometheus")
		require.Equal(t, http.StatusOK, code)
		for _, l := range strings.Split(string(body), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		return n, len(body)
	}
	var status struct {
		Retry struct {
			Topics []string `json:"topics"`
		} `json:"retry"`
		DLQ struct {
			ByReason map[string]int64 `json:"byReason"`
		} `json:"dlq"`
	}
	metrics := func() {
		code, body := svc.Get("/kafka/metrics")
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, json.Unmarshal(body, &status))
	}
	// The lag series appear once the group committed: wait for the order.
	waitUntil(t, 60*time.Second, "the lag of order.created in the exposition", func() bool {
		_, body := svc.Get("/kafka/metrics/prometheus")
		return strings.Contains(string(body), `kafkaevents_consumer_lag{partition="0",topic="order.created"}`)
	}, svc)
	before, sizeBefore := series()
	metrics()
	require.NotEmpty(t, status.Retry.Topics)
	unroutableBefore := status.DLQ.ByReason[string(wire.ReasonUnroutable)]

	p := c.producer(t)
	msgs := make([]*sarama.ProducerMessage, 0, forged)
	for i := range forged {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: status.Retry.Topics[i%len(status.Retry.Topics)], Value: sarama.StringEncoder(`{"orderId":"x"}`),
			Headers: []sarama.RecordHeader{
				{Key: []byte(wire.HeaderHandlerID), Value: []byte(fmt.Sprintf("forged-handler-%d", i))},
				{Key: []byte(wire.HeaderOriginalTopic), Value: []byte(fmt.Sprintf("forged-topic-%d", i))},
				{Key: []byte(wire.HeaderRetryCount), Value: []byte("1")},
				{Key: []byte(wire.HeaderRetryAfter), Value: []byte(time.Now().UTC().Format(wire.TimeFormat))},
			},
		})
	}
	began := time.Now()
	require.NoError(t, p.SendMessages(msgs))
	waitUntil(t, 120*time.Second, "the forged records in the DLQ", func() bool {
		metrics()
		return status.DLQ.ByReason[string(wire.ReasonUnroutable)]-unroutableBefore >= forged
	}, svc)
	took := time.Since(began)
	after, sizeAfter := series()
	// One label value more, unknown, whose series exist from the first
	// record counted there: the nine retry metrics of a handler label and
	// the DLQ's stored series of its reason; 2 spare.
	assert.LessOrEqual(t, after, before+9+1+2, "series before %d, after %d", before, after)
	logLines := strings.Count(svc.Logs(), "names no registered handler")
	assert.LessOrEqual(t, logLines, 1+int(took/(10*time.Second))+1, "the log line about unknown handlers is rate-limited")

	exit, stopTook := svc.Terminate(30 * time.Second)
	assert.Equal(t, 0, exit)
	assert.Less(t, stopTook, 5*time.Second, "an idle service stops at once")
	report(t, result{
		Scenario: "forged-retry-records/" + c.Kind, Broker: c.Kind,
		Injected: fmt.Sprintf("%d retry records with a made-up x-handler-id and x-original-topic each", forged),
		Notes: fmt.Sprintf("series %d before, %d after (exposition %d → %d bytes); all %d in the DLQ as unroutable after %s; log lines about them: %d; idle SIGTERM to exit %s",
			before, after, sizeBefore, sizeAfter, forged, took.Round(100*time.Millisecond), logLines, stopTook.Round(10*time.Millisecond)),
		Took: took.Round(100 * time.Millisecond).String(),
	})
}

// TestSIGTERMDuringStartupConnect starts the service against an address
// that accepts connections and never answers, as a SASL listener does for a
// plaintext client, and sends SIGTERM while it connects: it must exit within
// 5 s, saying what it was waiting for. Without a signal the start gives up
// after KAFKA_STARTUP_TIMEOUT with the likely cause.
func TestSIGTERMDuringStartupConnect(t *testing.T) {
	needProcesses(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 64)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	})
	run := func(vars map[string]string, signal bool) (exit int, took time.Duration, log string) {
		t.Helper()
		logPath := t.TempDir() + "/service.log"
		logf, err := os.Create(logPath)
		require.NoError(t, err)
		defer logf.Close()
		env := map[string]string{"KAFKA_BROKERS": ln.Addr().String(), "PORT": "0", "HOST": "127.0.0.1", "KAFKA_CLIENT_ID": uniq("chaos-startup")}
		for k, v := range vars {
			env[k] = v
		}
		cmd := exec.Command(bins(t).Orders)
		cmd.Env = childEnv(env)
		cmd.Stdout, cmd.Stderr = logf, logf
		require.NoError(t, cmd.Start())
		children.Store(cmd.Process, struct{}{})
		defer children.Delete(cmd.Process)
		select {
		case <-accepted:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("the service did not connect")
		}
		began := time.Now()
		if signal {
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatal("the service did not exit within 60 s")
		}
		b, _ := os.ReadFile(logPath)
		return cmd.ProcessState.ExitCode(), time.Since(began), string(b)
	}

	exit, took, log := run(nil, true)
	assert.Less(t, took, 5*time.Second, "exit after SIGTERM during the first connect; log:\n%s", tail(log, 10))
	assert.Contains(t, log, `waiting_for="connecting to the brokers"`)
	sigNote := fmt.Sprintf("SIGTERM to exit %d in %s", exit, took.Round(10*time.Millisecond))

	exit, took, log = run(map[string]string{
		"KAFKA_STARTUP_TIMEOUT": "3s", "KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "u",
		"KAFKA_SASL_PASSWORD": "chaos-startup-secret", "KAFKA_SSL_ENABLED": "false",
	}, false)
	assert.NotEqual(t, 0, exit)
	failure := strings.TrimSpace(lastLine(log, "startup timed out"))
	assert.Contains(t, failure, "is this listener SASL?", "log:\n%s", tail(log, 10))
	assert.NotContains(t, log, "chaos-startup-secret")
	report(t, result{
		Scenario: "startup-signal", Broker: "none",
		Injected: "a broker address that accepts TCP and never answers; SIGTERM during the first connect, then SCRAM with KAFKA_STARTUP_TIMEOUT=3s and no signal",
		Notes:    fmt.Sprintf("%s; without a signal exit %d after %s: %s", sigNote, exit, took.Round(10*time.Millisecond), failure),
		Took:     took.Round(10 * time.Millisecond).String(),
	})
}
