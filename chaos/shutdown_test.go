package chaos_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGracefulShutdownRedeliversNothingCompleted sends SIGTERM to the
// reference service while it handles a stream of orders, several times. Each
// time the in-flight handlers finish, the offsets of everything completed are
// committed and the process exits 0; after the restart no order that was
// completed before the SIGTERM is delivered again.
func TestGracefulShutdownRedeliversNothingCompleted(t *testing.T) {
	needProcesses(t)
	started := time.Now()
	c := newCluster(t)
	n := size(300, 5000)
	stops := size(1, 5)
	name := uniq("chaos-graceful")
	orders := newOrders(name, n)
	svc := c.service(t, name, nil)
	svc.Start()
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	fed := feed(t.Context(), c.producer(t), orders, size(100, 800))

	// Each instance first waits for a stable group and for the auto-commit
	// of what it redelivered after the startup rebalances (its two
	// subscriptions join the group one after the other), so that what
	// happens after the SIGTERM is the shutdown's doing alone.
	stable := func() {
		svc.WaitReady(60 * time.Second)
		c.waitGroupsStable(t, 60*time.Second, name+"-group", name+"-group.retry")
		svc.WaitCommitted(t, 30*time.Second)
	}
	stable()
	redelivered := 0
	var took []time.Duration
	for i := range stops {
		tr.WaitSettled(t, orders, n*(i+1)/(stops+2), 5*time.Minute, svc)
		code, d := svc.Terminate(30 * time.Second)
		took = append(took, d)
		require.Equal(t, 0, code, "exit code after SIGTERM %d; log:\n%s", i+1, tail(svc.Logs(), 30))
		// What the stopped instance completed is on the topics now; read it
		// all before the next instance starts.
		tr.WaitQuiet(time.Second, 10*time.Second)
		before := tr.processedSnapshot()
		svc.Start()
		stable()
		tr.WaitQuiet(time.Second, 10*time.Second)
		after := tr.processedSnapshot()
		for id, k := range before {
			if after[id] > k {
				redelivered++
				t.Logf("stop %d: %s was completed before SIGTERM and processed again (%d -> %d)", i+1, id, k, after[id])
			}
		}
	}
	require.NoError(t, <-fed)
	tr.WaitSettled(t, orders, n, 5*time.Minute, svc)
	code, d := svc.Terminate(30 * time.Second)
	took = append(took, d)
	assert.Equal(t, 0, code)
	tr.WaitQuiet(time.Second, 10*time.Second)

	tl := tr.Tally(orders)
	report(t, result{
		Scenario: "graceful-shutdown", Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("%d×SIGTERM mid-stream, then restart", stops),
		Recovery: fmt.Sprintf("SIGTERM to exit 0: %v", roundAll(took)),
		Took:     time.Since(started).Round(time.Second).String(),
		Notes:    fmt.Sprintf("completed before a SIGTERM and processed again after it: %d", redelivered),
	})
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
	assert.Zero(t, redelivered, "orders completed before a SIGTERM were processed again after the restart")
}

// processedSnapshot copies the processed counts.
func (tr *tracker) processedSnapshot() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[string]int, len(tr.processed))
	for k, v := range tr.processed {
		out[k] = v
	}
	return out
}
