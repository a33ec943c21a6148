package chaos_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScaleOutAndKillOne runs one, then two (and in full mode three)
// instances of the reference service in one group while orders flow: the
// partitions of order.created and of the retry lanes are shared out. Then it
// SIGKILLs an instance while it holds a waiting retry: its partitions, and
// the retries that waited there, move to the others. Nothing may be lost.
func TestScaleOutAndKillOne(t *testing.T) {
	needProcesses(t)
	started := time.Now()
	c := newCluster(t)
	n := size(400, 10000)
	name := uniq("chaos-scale")
	group := name + "-group"
	orders := newOrders(name, n)
	// Retries wait 1.5s, so that the killed instance holds some.
	vars := map[string]string{"KAFKA_RETRY_BASE_DELAY": "1500", "KAFKA_RETRY_MAX_DELAY": "1500"}
	a := c.service(t, name, vars)
	a.Start()
	a.WaitReady(60 * time.Second)
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	fed := feed(t.Context(), c.producer(t), orders, size(60, 200))

	shares := func(members int) []int {
		var out []int
		waitUntil(t, 60*time.Second, fmt.Sprintf("%d members sharing the 3 partitions of %s", members, topicOrderCreated), func() bool {
			out = out[:0]
			byMember, state, err := c.assignment(group, topicOrderCreated)
			if err != nil || state != "Stable" {
				return false
			}
			total := 0
			for _, ps := range byMember {
				if len(ps) > 0 {
					out = append(out, len(ps))
					total += len(ps)
				}
			}
			return len(out) == members && total == 3
		}, a)
		sort.Ints(out)
		return out
	}
	instances := size(2, 3)
	all := []*service{a}
	shared := [][]int{shares(1)}
	for len(all) < instances {
		s := c.service(t, name, vars)
		s.Start()
		all = append(all, s)
		shared = append(shared, shares(len(all)))
	}
	retryMembers := func() int {
		m, _, err := c.assignment(group+".retry", name+".retry.1500ms")
		if err != nil {
			return 0
		}
		owning := 0
		for _, ps := range m {
			if len(ps) > 0 {
				owning++
			}
		}
		return owning
	}
	waitUntil(t, 60*time.Second, "every instance sharing the retry lane", func() bool { return retryMembers() == instances }, all...)

	// Kill an instance while it holds a retry that waits for its due time.
	// The retry consumer holds one record per partition (the records behind
	// it wait in the partition), so an instance with one lane partition
	// holds at most one.
	var victim *service
	var waiting int64
	waitUntil(t, 60*time.Second, "an instance with a retry waiting", func() bool {
		for _, s := range all {
			if w := s.RetryStats().Waiting; w > waiting {
				victim, waiting = s, w
			}
		}
		return waiting >= 1
	}, all...)
	settledAtKill := tr.Settled(orders)
	victim.Kill()
	killed := time.Now()
	survivors := []*service{}
	for _, s := range all {
		if s != victim {
			survivors = append(survivors, s)
		}
	}
	shared = append(shared, shares(instances-1))
	moved := time.Since(killed)
	waitUntil(t, 60*time.Second, "the survivors sharing the retry lane", func() bool { return retryMembers() == instances-1 }, survivors...)
	require.NoError(t, <-fed)
	tr.WaitSettled(t, orders, n, 5*time.Minute, survivors...)
	tr.WaitQuiet(2*time.Second, 20*time.Second)
	delivered := int64(0)
	for _, s := range survivors {
		delivered += s.RetryStats().Delivered
	}

	tl := tr.Tally(orders)
	report(t, result{
		Scenario: "scale-out", Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("1→%d instances while orders flow, then SIGKILL of the one with %d retries waiting (at %d of %d orders settled)", instances, waiting, settledAtKill, n),
		Recovery: fmt.Sprintf("partitions of %s per instance %v (the last after the kill); reassigned %s after the kill", topicOrderCreated, shared, moved.Round(10*time.Millisecond)),
		Took:     time.Since(started).Round(time.Second).String(),
		Notes:    fmt.Sprintf("retries delivered by the survivors: %d", delivered),
	})
	assert.Len(t, shared[instances-1], instances, "every instance owns partitions")
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
}
