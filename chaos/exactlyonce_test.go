package chaos_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCrashHandsOffOnce SIGKILLs the reference service, with exactly-once
// hand-offs (KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS=true), while orders are
// handled, retried and dead-lettered. Besides losing nothing, no retry
// attempt of an order may be in a retry lane twice and no order in the DLQ
// twice, as a read_committed reader sees them: a kill between a hand-off's
// record and the commit past its original aborts both. With
// KAFKAEVENTS_CHAOS_HANDOFFS=at-least-once the option is off and the copies
// are counted, not asserted (RELIABILITY.md compares the two).
func TestCrashHandsOffOnce(t *testing.T) {
	crashHandsOffOnce(t, "crash-exactly-once", uniq("chaos-eos"), nil)
}

// TestCrashHandsOffOnceWithConcurrency is TestCrashHandsOffOnce with 32
// records of a partition in flight.
func TestCrashHandsOffOnceWithConcurrency(t *testing.T) {
	crashHandsOffOnce(t, "crash-exactly-once-concurrency-32", uniq("chaos-eos-conc"), map[string]string{"KAFKA_CONSUMER_CONCURRENCY": "32"})
}

func crashHandsOffOnce(t *testing.T, scenario, name string, vars map[string]string) {
	needProcesses(t)
	env := map[string]string{"KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS": "true"}
	exactlyOnce := os.Getenv("KAFKAEVENTS_CHAOS_HANDOFFS") != "at-least-once"
	if !exactlyOnce {
		env["KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS"] = "false"
		scenario += " (option off)"
	}
	maps.Copy(env, vars)
	env, scenario = withCommitInterval(env, scenario)
	started := time.Now()
	c := newCluster(t)
	n := size(600, 10000)
	kills := size(3, 5)
	orders := newOrders(name, n)

	svc := c.service(t, name, env)
	svc.Start()
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	att := &attempts{prefix: name, seen: map[string]int{}}
	c.readFromStart(t, att.add, retryLanes(name)...)
	fed := feed(t.Context(), c.producer(t), orders, size(200, 1000))

	downtime := c.killMidStream(t, svc, tr, orders, kills, started)
	require.NoError(t, <-fed)
	tr.WaitSettled(t, orders, n, time.Duration(size(3, 10))*time.Minute, svc)
	settled := time.Since(started)
	code, took := svc.Terminate(30 * time.Second)
	assert.Equal(t, 0, code, "exit code after SIGTERM")
	tr.WaitQuiet(2*time.Second, 20*time.Second)

	tl := tr.Tally(orders)
	dlqCopies, dlqExample := tr.dlqCopies(orders)
	laneCopies, laneExample := att.copies()
	report(t, result{
		Scenario: scenario, Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("%d×SIGKILL of the service mid-stream, restarted with the same client ID and group", kills),
		Recovery: fmt.Sprintf("restart to HTTP ready %v; SIGTERM at the end took %s", roundAll(downtime), took.Round(time.Millisecond)),
		Took:     settled.Round(time.Second).String(),
		Notes:    fmt.Sprintf("extra DLQ copies %d (%s), extra retry attempts %d (%s)", dlqCopies, dlqExample, laneCopies, laneExample),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
	if exactlyOnce {
		assert.Zero(t, dlqCopies, "orders in the DLQ more than once, e.g. %s", dlqExample)
		assert.Zero(t, laneCopies, "retry attempts in the retry lanes more than once, e.g. %s", laneExample)
	}
}

// retryLanes are the retry topics of the reference service named name with
// the scenarios' retry delays (100ms, doubling, at most 400ms, 3 attempts).
func retryLanes(name string) []string {
	return []string{name + ".retry.100ms", name + ".retry.200ms", name + ".retry.400ms"}
}

// dlqCopies counts the DLQ records beyond the first of each order, and
// names one order that has some.
func (tr *tracker) dlqCopies(orders []order) (int, string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n, example := 0, ""
	for _, o := range orders {
		if d := len(tr.dead[o.ID]); d > 1 {
			n += d - 1
			if example == "" {
				example = fmt.Sprintf("%s %d times", o.ID, d)
			}
		}
	}
	return n, example
}

// attempts counts the retry records of each order and attempt.
type attempts struct {
	prefix string
	mu     sync.Mutex
	seen   map[string]int // "order attempt" -> records
}

func (a *attempts) add(m *sarama.ConsumerMessage) {
	var v struct {
		OrderID string `json:"orderId"`
	}
	if json.Unmarshal(m.Value, &v) != nil || !strings.HasPrefix(v.OrderID, a.prefix) {
		return
	}
	attempt, reprocessed := "", ""
	for _, h := range m.Headers {
		switch string(h.Key) {
		case "x-retry-count":
			attempt = string(h.Value)
		case "x-reprocess-count":
			if string(h.Value) != "0" {
				reprocessed = " reprocess " + string(h.Value)
			}
		}
	}
	a.mu.Lock()
	a.seen[v.OrderID+" attempt "+attempt+reprocessed]++
	a.mu.Unlock()
}

// copies counts the retry records beyond the first of each order and
// attempt, and names one.
func (a *attempts) copies() (int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, example := 0, ""
	for k, c := range a.seen {
		if c > 1 {
			n += c - 1
			if example == "" {
				example = fmt.Sprintf("%s %d times", k, c)
			}
		}
	}
	return n, example
}

// TestKillAfterEachHandoff follows one always-failing order through its
// hops (main topic → three retry lanes → DLQ, then a reprocess run → lane 1)
// and SIGKILLs the reference service as soon as it logs each hand-off of the
// order, restarting it each time (and starting the reprocess run again): the moment when, with at-least-once hand-offs, the record handed off
// is written and the offset past the original is not committed yet. With
// exactly-once hand-offs each next hop holds exactly one record of the order
// (read read_committed), the DLQ one, and lane 1 one of the reprocessing.
// KAFKAEVENTS_CHAOS_HANDOFFS=at-least-once
// runs it with the option off and reports the copies instead.
func TestKillAfterEachHandoff(t *testing.T) {
	needProcesses(t)
	exactlyOnce := os.Getenv("KAFKAEVENTS_CHAOS_HANDOFFS") != "at-least-once"
	c := newCluster(t)
	name := uniq("chaos-kill-hop")
	const token = "chaos-kill-hop-token"
	svc := c.service(t, name, map[string]string{
		"KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS": strconv.FormatBool(exactlyOnce), "KAFKA_ADMIN_TOKEN": token,
	})
	svc.Start()
	svc.WaitReady(2 * time.Minute)
	c.waitGroupsStable(t, 2*time.Minute, name+"-group", name+"-group.retry")
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	att := &attempts{prefix: name, seen: map[string]int{}}
	c.readFromStart(t, att.add, retryLanes(name)...)

	o := order{ID: name + "-000001", Kind: kindAlwaysFail}
	_, _, err := c.producer(t).SendMessage(o.Record())
	require.NoError(t, err)
	hops := []struct{ hop, line string }{
		{"main topic → lane 1", "attempt=1"},
		{"lane 1 → lane 2", "attempt=2"},
		{"lane 2 → lane 3", "attempt=3"},
		{"lane 3 → DLQ", "Message stored in the DLQ"},
	}
	for _, h := range hops {
		waitUntil(t, 2*time.Minute, "the hand-off "+h.hop+" in the log", func() bool {
			return handedOff(svc.Logs(), o.ID, h.line)
		}, svc)
		svc.Kill()
		t.Logf("SIGKILL after the hand-off %s", h.hop)
		svc.Start()
		svc.WaitReady(2 * time.Minute)
		c.waitGroupsStable(t, 2*time.Minute, name+"-group", name+"-group.retry")
	}
	waitUntil(t, 2*time.Minute, "the order in the DLQ", func() bool { return tr.Settled([]order{o}) == 1 }, svc)
	tr.WaitQuiet(3*time.Second, 30*time.Second)
	att.mu.Lock()
	got := []int{att.seen[o.ID+" attempt 1"], att.seen[o.ID+" attempt 2"], att.seen[o.ID+" attempt 3"]}
	att.mu.Unlock()
	dlqCopies, _ := tr.dlqCopies([]order{o})

	// The last hop: a reprocess run hands the order to lane 1 again, and the
	// service is killed as soon as it logged that; a new run after the
	// restart must not hand it off a second time.
	reprocess := func() {
		code, out := svc.Post("/kafka/dlq/reprocess", `{"topic":"order.created"}`, "Bearer "+token)
		require.Less(t, code, 300, "start a reprocess run: %s", out)
	}
	before := countHandoffs(svc.Logs(), o.ID, "attempt=1")
	reprocess()
	waitUntil(t, 2*time.Minute, "the hand-off reprocess → lane 1 in the log", func() bool {
		return countHandoffs(svc.Logs(), o.ID, "attempt=1") > before
	}, svc)
	svc.Kill()
	t.Logf("SIGKILL after the hand-off reprocess → lane 1")
	svc.Start()
	svc.WaitReady(2 * time.Minute)
	c.waitGroupsStable(t, 2*time.Minute, name+"-group", name+"-group.retry")
	// The killed run holds its topic until its lease expires (30 s after
	// its last renewal): until then a start is refused with a 409.
	restarted := time.Now()
	waitUntil(t, 2*time.Minute, "a new reprocess run once the killed run's lease expired", func() bool {
		code, out := svc.Post("/kafka/dlq/reprocess", `{"topic":"order.created"}`, "Bearer "+token)
		if code == http.StatusConflict {
			time.Sleep(time.Second)
			return false
		}
		require.Less(t, code, 300, "start a reprocess run: %s", out)
		return true
	}, svc)
	t.Logf("a new run started %s after the restart", time.Since(restarted).Round(time.Second))
	waitUntil(t, 2*time.Minute, "the second reprocess run finished", func() bool {
		return strings.Contains(svc.Logs(), "DLQ reprocessing finished")
	}, svc)
	tr.WaitQuiet(3*time.Second, 30*time.Second)
	att.mu.Lock()
	again := att.seen[o.ID+" attempt 1 reprocess 1"]
	att.mu.Unlock()

	report(t, result{
		Scenario: "kill after each hand-off" + map[bool]string{true: "", false: " (option off)"}[exactlyOnce], Broker: c.Kind,
		tally: tr.Tally([]order{o}), Injected: "5×SIGKILL, each as soon as the service logged a hand-off of the order (the last one of a reprocess run)",
		Took: "-", Notes: fmt.Sprintf("retry records of attempts 1, 2, 3: %v; DLQ records: %d; lane-1 records of its reprocessing: %d", got, 1+dlqCopies, again),
	})
	if exactlyOnce {
		assert.Equal(t, []int{1, 1, 1}, got, "retry records of attempts 1, 2 and 3")
		assert.Zero(t, dlqCopies, "DLQ records beyond the first")
		assert.Equal(t, 1, again, "lane-1 records of the reprocessed order")
	}
}

// countHandoffs counts the lines of logs that handedOff matches.
func countHandoffs(logs, id, line string) int {
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		if handedOff(l, id, line) {
			n++
		}
	}
	return n
}

// handedOff reports whether logs has a line of a hand-off of order id that
// contains line: a "Retry scheduled" line of that attempt, or the DLQ's.
func handedOff(logs, id, line string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, id) && strings.Contains(l, line) && (strings.Contains(l, "Retry scheduled") || strings.Contains(l, "Message stored in the DLQ")) {
			return true
		}
	}
	return false
}
