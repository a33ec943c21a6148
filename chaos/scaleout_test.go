package chaos_test

import (
	"fmt"
	"strings"
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
//
// It runs once per rebalance strategy, eager (range) and incremental
// (cooperative-sticky), each with 32 handlers per instance, and logs how
// long each handover took.
func TestScaleOutAndKillOne(t *testing.T) {
	needProcesses(t)
	for _, strategy := range []string{"range", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) {
			needProcesses(t)
			scaleOutAndKillOne(t, strategy)
		})
	}
}

// handover is one change of a group's members: from a member starting, or
// being killed, until the group is Stable with the partitions of
// order.created shared out among the members.
type handover struct {
	What string
	Took time.Duration
	// Shares are the partitions per member afterwards, smallest first.
	Shares []int
	// From and To are the generations before and after; -1 where the
	// strategy does not show them (see groupView.Generation).
	From, To int32

	began time.Time
}

func (h handover) String() string {
	s := fmt.Sprintf("%s in %s, partitions %v", h.What, h.Took.Round(10*time.Millisecond), h.Shares)
	if h.From >= 0 && h.To >= 0 {
		s += fmt.Sprintf(", generation %d→%d", h.From, h.To)
	}
	return s
}

// scaleGroup is the group of a scenario's instances.
type scaleGroup struct {
	c     *cluster
	group string
}

// waitShared waits until the group is Stable with the 3 partitions of
// order.created owned by exactly members members, and returns what it saw.
func (g scaleGroup) waitShared(t *testing.T, members int, svcs ...*service) groupView {
	t.Helper()
	var v groupView
	waitUntil(t, 60*time.Second, fmt.Sprintf("%d members sharing the 3 partitions of %s", members, topicOrderCreated), func() bool {
		var err error
		v, err = g.c.assignment(g.group, topicOrderCreated)
		if err != nil || v.State != "Stable" {
			return false
		}
		shares, total := v.Sharing()
		return len(shares) == members && total == 3
	}, svcs...)
	return v
}

// generation returns the group's generation now, or -1 where it does not show.
func (g scaleGroup) generation() int32 {
	v, err := g.c.assignment(g.group, topicOrderCreated)
	if err != nil {
		return -1
	}
	return v.Generation
}

// handover waits for the group to settle on members members after change
// (starting or killing an instance) and measures how long that took from
// the moment change began.
func (g scaleGroup) handover(t *testing.T, what string, members int, change func(), svcs func() []*service) handover {
	t.Helper()
	from := g.generation()
	began := time.Now()
	change()
	v := g.waitShared(t, members, svcs()...)
	shares, _ := v.Sharing()
	h := handover{What: what, Took: time.Since(began), Shares: shares, From: from, To: v.Generation, began: began}
	t.Logf("handover: %s", h)
	return h
}

// waitRetryShared waits until members members of the retry consumer group
// own partitions of the lane, and logs how long after the main group's
// handover began that was.
func (g scaleGroup) waitRetryShared(t *testing.T, lane string, members int, after handover, svcs ...*service) {
	t.Helper()
	waitUntil(t, 60*time.Second, fmt.Sprintf("%d members sharing the retry lane", members), func() bool {
		v, err := g.c.assignment(g.group+".retry", lane)
		if err != nil || v.State != "Stable" {
			return false
		}
		shares, _ := v.Sharing()
		return len(shares) == members
	}, svcs...)
	t.Logf("handover: retry lane shared out %s after the start of %s (owners: %d)", time.Since(after.began).Round(10*time.Millisecond), after.What, members)
}

func scaleOutAndKillOne(t *testing.T, strategy string) {
	started := time.Now()
	c := newCluster(t)
	n := size(400, 10000)
	name := uniq("chaos-scale")
	g := scaleGroup{c: c, group: name + "-group"}
	lane := name + ".retry.1500ms"
	orders := newOrders(name, n)
	const concurrency = 32
	vars := map[string]string{
		"KAFKA_REBALANCE_STRATEGY":   strategy,
		"KAFKA_CONSUMER_CONCURRENCY": fmt.Sprint(concurrency),
		// Retries wait 1.5s, so that the killed instance holds some.
		"KAFKA_RETRY_BASE_DELAY": "1500", "KAFKA_RETRY_MAX_DELAY": "1500",
	}
	a := c.service(t, name, vars)
	a.Start()
	a.WaitReady(60 * time.Second)
	tr := c.track(t, name, topicOrderProcessed, name+".dlq")
	fed := feed(t.Context(), c.producer(t), orders, size(60, 200))

	instances := size(2, 3)
	all := []*service{a}
	members := func() []*service { return all }
	v := g.waitShared(t, 1, a)
	require.Equal(t, strategy, v.Protocol, "the rebalance protocol the group agreed on")
	first, _ := v.Sharing()
	shared := [][]int{first}
	var handovers []handover
	for len(all) < instances {
		s := c.service(t, name, vars)
		h := g.handover(t, fmt.Sprintf("%d→%d members", len(all), len(all)+1), len(all)+1, func() {
			s.Start()
			all = append(all, s)
		}, members)
		handovers = append(handovers, h)
		shared = append(shared, h.Shares)
	}
	g.waitRetryShared(t, lane, instances, handovers[len(handovers)-1], all...)

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
	var survivors []*service
	for _, s := range all {
		if s != victim {
			survivors = append(survivors, s)
		}
	}
	killed := g.handover(t, fmt.Sprintf("SIGKILL, %d→%d members", instances, instances-1), instances-1, victim.Kill, func() []*service { return survivors })
	handovers = append(handovers, killed)
	shared = append(shared, killed.Shares)
	g.waitRetryShared(t, lane, instances-1, killed, survivors...)
	require.NoError(t, <-fed)
	tr.WaitSettled(t, orders, n, 5*time.Minute, survivors...)
	tr.WaitQuiet(2*time.Second, 20*time.Second)
	delivered := int64(0)
	for _, s := range survivors {
		delivered += s.RetryStats().Delivered
	}

	var took []string
	for _, h := range handovers {
		took = append(took, h.String())
	}
	t.Logf("handovers with %s: %s", strategy, strings.Join(took, "; "))
	tl := tr.Tally(orders)
	report(t, result{
		Scenario: "scale-out " + strategy, Broker: c.Kind, tally: tl,
		Injected: fmt.Sprintf("1→%d instances (%s, concurrency %d) while orders flow, then SIGKILL of the one with %d retries waiting (at %d of %d orders settled)", instances, strategy, concurrency, waiting, settledAtKill, n),
		Recovery: fmt.Sprintf("partitions of %s per instance %v (the last after the kill); reassigned %s after the kill", topicOrderCreated, shared, killed.Took.Round(10*time.Millisecond)),
		Took:     time.Since(started).Round(time.Second).String(),
		Notes:    fmt.Sprintf("retries delivered by the survivors: %d", delivered),
	})
	assert.Len(t, shared[instances-1], instances, "every instance owns partitions")
	assert.Zero(t, tl.Lost, "lost orders, e.g. %v", tl.LostIDs)
	assert.Zero(t, tl.Misrouted, "orders with the wrong outcome: %v", tl.Wrong)
}
