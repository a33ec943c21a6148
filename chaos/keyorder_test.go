package chaos_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newKeyedOrders returns n orders over keys record keys, in turn (order i
// has key i mod keys): 10% fail once, 2% always fail, as newOrders.
func newKeyedOrders(prefix string, n, keys int) []order {
	out := newOrders(prefix, n)
	for i := range out {
		out[i].Key = fmt.Sprintf("key-%s-%d", prefix, i%keys)
	}
	return out
}

// orderViolations returns the pairs of processed orders of one key whose
// first successful handling came in the wrong order.
func (tr *tracker) orderViolations(orders []order) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	last := map[string]order{}
	var out []string
	for _, o := range orders {
		at, ok := tr.firstAt[o.ID]
		if !ok {
			continue // dead-lettered
		}
		if prev, seen := last[o.Key]; seen && at.Before(tr.firstAt[prev.ID]) {
			out = append(out, fmt.Sprintf("%s before %s", o.ID, prev.ID))
		}
		last[o.Key] = o
	}
	return out
}

// TestCrashKeepsKeyOrder kills the reference service (SIGKILL) several times
// while it handles orders of a few keys each, with KeepKeyOrder and a
// concurrency of 32: 10% of the orders fail once and 2% always fail (their
// keys released when they are dead-lettered). Every order must end processed
// or dead-lettered, and within each key the orders must be first handled
// successfully in the order they were sent, across the kills.
func TestCrashKeepsKeyOrder(t *testing.T) {
	needProcesses(t)
	started := time.Now()
	c := newCluster(t)
	name := uniq("chaos-keyorder")
	n, keys := size(600, 6000), size(60, 300)
	kills := size(3, 5)
	orders := newKeyedOrders(name, n, keys)
	svc := c.service(t, name, map[string]string{
		"KAFKA_RETRY_KEEP_KEY_ORDER":    "true",
		"KAFKA_RETRY_DEAD_LETTERED_KEY": "release",
		"KAFKA_CONSUMER_CONCURRENCY":    "32",
	})
	svc.Start()
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	fed := feed(t.Context(), c.producer(t), orders, size(150, 1000))
	downtime := c.killMidStream(t, svc, tr, orders, kills, started)
	require.NoError(t, <-fed)
	tr.WaitSettled(t, orders, n, time.Duration(size(3, 10))*time.Minute, svc)
	settled := time.Since(started)
	code, took := svc.Terminate(30 * time.Second)
	assert.Equal(t, 0, code, "exit code after SIGTERM")
	tr.WaitQuiet(2*time.Second, 20*time.Second)

	tl := tr.Tally(orders)
	violations := tr.orderViolations(orders)
	report(t, result{
		Scenario: "crash-keep-key-order", Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("%d×SIGKILL mid-stream; KeepKeyOrder, %d keys, concurrency 32", kills, keys),
		Recovery: fmt.Sprintf("restart to HTTP ready %v; SIGTERM at the end took %s", roundAll(downtime), took.Round(time.Millisecond)),
		Took:     settled.Round(time.Second).String(),
		Notes:    fmt.Sprintf("key-order violations on first successful handling: %d", len(violations)),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
	assert.Empty(t, violations, "key order on first successful handling")
}
