package chaos_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBrokerRestart stops the broker while the reference service handles a
// stream of orders and starts it again after a while. The service is not
// restarted: /kafka/health/ready must go 503 and back to 200 while
// /kafka/health/live stays 200, and every order must still end processed or
// in the DLQ. It runs against a real Kafka broker of its own when
// KAFKA_LOCAL_SCRIPT is set (make test-kafka), and against the embedded
// broker process with its data on disk otherwise.
func TestBrokerRestart(t *testing.T) {
	needProcesses(t)
	started := time.Now()
	var c *cluster
	var stop, start func()
	if os.Getenv("KAFKA_LOCAL_SCRIPT") != "" {
		c = newCluster(t)
		stop = func() { require.NoError(t, c.local.Run("stop")) }
		start = func() { require.NoError(t, c.local.Run("start")) }
	} else {
		port := freePort(t)
		b := startBrokerProcess(t, "-port", strconv.Itoa(port), "-data-dir", filepath.Join(t.TempDir(), "kafka"),
			"-min-session-timeout", "500ms", "-topics", topicOrderCreated+","+topicOrderProcessed)
		c = &cluster{Brokers: []string{b.Addr}, Kind: "embedded", Session: "2000", Heartbeat: "400", embedded: b}
		stop, start = b.Stop, b.Start
	}
	n := size(200, 5000)
	outage := time.Duration(size(2, 20)) * time.Second
	name := uniq("chaos-outage")
	orders := newOrders(name, n)
	svc := c.service(t, name, nil)
	svc.Start()
	svc.WaitReady(60 * time.Second)
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	p := c.producer(t)
	half := n / 2
	require.NoError(t, <-feed(t.Context(), p, orders[:half], size(100, 1000)))
	tr.WaitSettled(t, orders, half/2, time.Minute, svc)

	probes := newProber(svc)
	defer probes.Stop()
	stopping := time.Now()
	stop()
	stopped := time.Now()
	waitUntil(t, 90*time.Second, "readiness 503", func() bool { return probes.Ready() == http.StatusServiceUnavailable }, svc)
	notReady := time.Since(stopped)
	if rest := outage - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	}
	startCall := time.Now()
	start()
	restarted := time.Now()
	waitUntil(t, 3*time.Minute, "readiness 200 again", func() bool { return probes.Ready() == http.StatusOK }, svc)
	readyAgain := time.Since(restarted)
	settledBefore := tr.Settled(orders)
	require.NoError(t, <-feed(t.Context(), p, orders[half:], size(200, 1000)))
	waitUntil(t, 3*time.Minute, "the first order after the restart processed", func() bool { return tr.Settled(orders) > settledBefore }, svc)
	firstAfter := time.Since(restarted)
	tr.WaitSettled(t, orders, n, 5*time.Minute, svc)
	tr.WaitQuiet(2*time.Second, 20*time.Second)
	probes.Stop()
	code, _ := svc.Terminate(30 * time.Second)
	assert.Equal(t, 0, code, "exit code after SIGTERM")

	tl := tr.Tally(orders)
	liveFailures := probes.LiveFailures()
	report(t, result{
		Scenario: "broker-restart", Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("broker stopped (took %s) for %s while orders flowed, then started again (took %s); the service is not restarted",
			stopped.Sub(stopping).Round(100*time.Millisecond), restarted.Sub(stopped).Round(100*time.Millisecond), restarted.Sub(startCall).Round(100*time.Millisecond)),
		Recovery: fmt.Sprintf("ready 503 %s after the stop; ready 200 %s and first order processed %s after the broker was back; live non-200 answers: %d",
			notReady.Round(10*time.Millisecond), readyAgain.Round(10*time.Millisecond), firstAfter.Round(10*time.Millisecond), liveFailures),
		Took: time.Since(started).Round(time.Second).String(),
	})
	assert.Zero(t, liveFailures, "liveness never depends on Kafka")
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	// A valid order may end in the DLQ when its retries run out during the
	// outage; an always-failing one may never be processed.
	assert.Zero(t, tl.FailedProcessed, "always-failing orders processed: %v", tl.Wrong)
}

// prober polls a service's readiness and liveness every 200ms.
type prober struct {
	mu           sync.Mutex
	ready        int
	liveFailures int
	stop         chan struct{}
	once         sync.Once
	done         chan struct{}
}

func newProber(s *service) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			ready, _ := s.Get("/kafka/health/ready")
			live, _ := s.Get("/kafka/health/live")
			p.mu.Lock()
			p.ready = ready
			if live != http.StatusOK {
				p.liveFailures++
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *prober) Ready() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

func (p *prober) LiveFailures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.liveFailures
}

func (p *prober) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
