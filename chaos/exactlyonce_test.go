package chaos_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
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
	attempt := ""
	for _, h := range m.Headers {
		if string(h.Key) == "x-retry-count" {
			attempt = string(h.Value)
		}
	}
	a.mu.Lock()
	a.seen[v.OrderID+" attempt "+attempt]++
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
