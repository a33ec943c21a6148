package chaos_test

import (
	"fmt"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCrashLosesNothing feeds orders to the reference service and SIGKILLs it
// several times while they are handled, retried and dead-lettered,
// restarting it each time with the same client ID and group. Every order must
// end in order.processed or the DLQ, the always-failing ones in the DLQ only.
// Redeliveries after a kill are expected (at-least-once) and counted.
func TestCrashLosesNothing(t *testing.T) {
	crashLosesNothing(t, "crash", uniq("chaos-crash"), nil)
}

// TestCrashLosesNothingWithConcurrency is TestCrashLosesNothing with 32
// records of a partition in flight (KAFKA_CONSUMER_CONCURRENCY=32): each kill
// hits many records in their handlers at once, and commits that passed one
// of them, or completed offsets wrongly skipped after the restart, would lose
// orders.
func TestCrashLosesNothingWithConcurrency(t *testing.T) {
	crashLosesNothing(t, "crash-concurrency-32", uniq("chaos-crash-conc"), map[string]string{"KAFKA_CONSUMER_CONCURRENCY": "32"})
}

func crashLosesNothing(t *testing.T, scenario, name string, vars map[string]string) {
	needProcesses(t)
	vars, scenario = withCommitInterval(vars, scenario)
	started := time.Now()
	c := newCluster(t)
	n := size(300, 10000)
	kills := size(3, 5)
	orders := newOrders(name, n)

	svc := c.service(t, name, vars)
	svc.Start()
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	fed := feed(t.Context(), c.producer(t), orders, size(150, 1000))

	downtime := c.killMidStream(t, svc, tr, orders, kills, started)
	require.NoError(t, <-fed)
	t.Logf("%s: all orders fed, %d settled", time.Since(started).Round(time.Millisecond), tr.Settled(orders))
	tr.WaitSettled(t, orders, n, time.Duration(size(3, 10))*time.Minute, svc)
	settled := time.Since(started)
	code, took := svc.Terminate(30 * time.Second)
	assert.Equal(t, 0, code, "exit code after SIGTERM")
	tr.WaitQuiet(2*time.Second, 20*time.Second)

	tl := tr.Tally(orders)
	report(t, result{
		Scenario: scenario, Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("%d×SIGKILL of the service mid-stream, restarted with the same client ID and group", kills),
		Recovery: fmt.Sprintf("restart to HTTP ready %v; SIGTERM at the end took %s", roundAll(downtime), took.Round(time.Millisecond)),
		Took:     settled.Round(time.Second).String(),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
}

// withCommitInterval returns vars and scenario with the commit interval of
// KAFKAEVENTS_CHAOS_COMMIT_INTERVAL, when it is set: the services get none
// of the test's KAFKA_* variables, and this one compares commit intervals
// (RELIABILITY.md).
func withCommitInterval(vars map[string]string, scenario string) (map[string]string, string) {
	v := os.Getenv("KAFKAEVENTS_CHAOS_COMMIT_INTERVAL")
	if v == "" {
		return vars, scenario
	}
	vars = maps.Clone(vars)
	if vars == nil {
		vars = map[string]string{}
	}
	vars["KAFKA_CONSUMER_COMMIT_INTERVAL"] = v
	return vars, scenario + " commit-interval=" + v
}

// killMidStream kills svc (SIGKILL) kills times, at evenly spread points of
// the stream of orders, while records are in flight on the main topic and in
// the retry lanes, restarting it each time, and returns how long each
// restart took to HTTP ready.
func (c *cluster) killMidStream(t *testing.T, svc *service, tr *tracker, orders []order, kills int, started time.Time) []time.Duration {
	t.Helper()
	n := len(orders)
	var downtime []time.Duration
	for i := range kills {
		tr.WaitSettled(t, orders, n*(i+1)/(kills+2), 5*time.Minute, svc)
		svc.Kill()
		down := time.Now()
		svc.Start()
		downtime = append(downtime, time.Since(down))
		// Kill the next instance once it consumes, not while it joins the
		// group: TestCrashDuringJoin covers that.
		svc.WaitReady(2 * time.Minute)
		c.waitGroupsStable(t, 2*time.Minute, svc.Name+"-group", svc.Name+"-group.retry")
		t.Logf("%s: kill %d at %d of %d orders settled", time.Since(started).Round(time.Millisecond), i+1, tr.Settled(orders), n)
	}
	return downtime
}

func roundAll(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond).String()
	}
	return out
}

// TestCrashWhileRetriesWait kills the service while every retry waits in its
// retry topic, with the service's default offset reset (KAFKA_FROM_BEGINNING
// unset: new groups start at the end of their topics). The restarted service
// must still deliver every waiting retry: the retry topics are the service's
// own, so their consumer group must never skip records it has not read.
func TestCrashWhileRetriesWait(t *testing.T) {
	fullOnly(t, "TestWaitingRetriesSurviveRestartWithoutFromBeginning covers the same defect in process")
	needProcesses(t)
	started := time.Now()
	c := newCluster(t)
	n := size(60, 300)
	name := uniq("chaos-waiting")
	orders := make([]order, n)
	for i := range orders {
		orders[i] = order{ID: fmt.Sprintf("%s-%06d", name, i), Kind: kindFailOnce}
	}
	vars := map[string]string{"KAFKA_FROM_BEGINNING": "", "KAFKA_RETRY_BASE_DELAY": "3s", "KAFKA_RETRY_MAX_DELAY": "3s"}
	svc := c.service(t, name, vars)
	svc.Start()
	svc.WaitReady(60 * time.Second)
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	require.NoError(t, <-feed(t.Context(), c.producer(t), orders, 10000))

	// Every order failed once and its retry waits 3s; let the originals'
	// offsets be committed (1s auto-commit), then kill.
	waitUntil(t, 60*time.Second, "every retry scheduled", func() bool { return svc.RetryStats().Scheduled >= int64(n) }, svc)
	time.Sleep(1500 * time.Millisecond)
	require.Zero(t, tr.Settled(orders), "no retry may be due yet")
	svc.Kill()
	svc.Start()
	tr.WaitSettled(t, orders, n, 2*time.Minute, svc)
	tr.WaitQuiet(time.Second, 10*time.Second)
	tl := tr.Tally(orders)
	report(t, result{
		Scenario: "crash-while-retries-wait", Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("SIGKILL while %d retries (3s delay) waited, new groups starting at the end (KAFKA_FROM_BEGINNING unset)", n),
		Took:     time.Since(started).Round(time.Second).String(),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
}

// TestCrashDuringJoin kills the service twice right after it started, while
// its consumer group members are still joining, and then lets a third
// instance run. The dead members keep the group's rebalance open for up to
// the rebalance timeout (10s here); the third instance must wait that out and
// consume, not give up on its join and try again for ever.
func TestCrashDuringJoin(t *testing.T) {
	needProcesses(t)
	if os.Getenv("KAFKA_LOCAL_SCRIPT") == "" && os.Getenv("KAFKA_BROKERS") == "" && !full {
		// Recovery on the embedded broker took 4 s to 36 s in most runs,
		// but once more than 3 minutes: its group coordinator can leave the
		// retry group without an assignment after members were killed
		// mid-join. Real Kafka recovers within its rebalance timeout.
		t.Skip("on the embedded broker with KAFKAEVENTS_CHAOS=1 only (make chaos); short form on real Kafka (make test-kafka)")
	}
	started := time.Now()
	c := newCluster(t)
	n := size(100, 1000)
	name := uniq("chaos-join")
	orders := newOrders(name, n)
	svc := c.service(t, name, nil)
	svc.Start()
	svc.WaitReady(60 * time.Second)
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	require.NoError(t, <-feed(t.Context(), c.producer(t), orders, 1000))
	tr.WaitSettled(t, orders, n/10, time.Minute, svc)
	for range 2 {
		svc.Kill()
		svc.Start() // answers HTTP while its members join the group
	}
	svc.Kill()
	down := time.Now()
	svc.Start()
	tr.WaitSettled(t, orders, n, 3*time.Minute, svc)
	recovered := time.Since(down)
	tr.WaitQuiet(time.Second, 10*time.Second)
	tl := tr.Tally(orders)
	report(t, result{
		Scenario: "crash-during-join", Broker: c.Kind, tally: tl,
		Injected: "3 × SIGKILL in a row, each right after the start, while the group members join",
		Recovery: fmt.Sprintf("every order settled %s after the last restart", recovered.Round(100*time.Millisecond)),
		Took:     time.Since(started).Round(time.Second).String(),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
}
