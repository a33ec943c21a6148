package chaos_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStaticMemberKilledAndRestarted runs two instances of the reference
// service with static membership (KAFKA_CONSUMER_INSTANCE_ID pod-0 and
// pod-1) under a stream of orders that each fail once and are retried after
// 1s. One instance is SIGKILLed and, 3s later, started again with the same
// instance ID.
// Its members take their places back without a rebalance: the restarted
// instance owns its partitions again, in both groups, long before the 20 s
// session timeout, the other instance keeps its own throughout, and every
// order is processed.
//
// KAFKAEVENTS_CHAOS_DYNAMIC=1 runs the same restart without instance IDs,
// for comparison (RELIABILITY.md): the restarted instance's join then waits
// for the killed members' sessions to time out.
func TestStaticMemberKilledAndRestarted(t *testing.T) {
	needProcesses(t)
	static := os.Getenv("KAFKAEVENTS_CHAOS_DYNAMIC") != "1"
	const session, down = 20 * time.Second, 3 * time.Second
	started := time.Now()
	c := newCluster(t)
	name := uniq("chaos-static")
	group, retryGroup := name+"-group", name+"-group.retry"
	vars := func(pod string) map[string]string {
		v := map[string]string{
			"KAFKA_SESSION_TIMEOUT":    session.String(),
			"KAFKA_HEARTBEAT_INTERVAL": "1s",
			"KAFKA_REBALANCE_TIMEOUT":  "30s",
			"KAFKA_RETRY_BASE_DELAY":   "1s",
			"KAFKA_RETRY_MAX_DELAY":    "1s",
		}
		if static {
			v["KAFKA_CONSUMER_INSTANCE_ID"] = pod
		}
		return v
	}
	svcA := c.service(t, name, vars("pod-0"))
	svcB := c.service(t, name, vars("pod-1"))
	svcA.Start()
	svcB.Start()
	svcA.WaitReady(60 * time.Second)
	svcB.WaitReady(60 * time.Second)
	c.waitOwners(t, 60*time.Second, group, topicOrderCreated, 2)
	c.waitOwners(t, 60*time.Second, retryGroup, "", 2)
	before := c.owners(t, group, topicOrderCreated)
	beforeRetry := c.owners(t, retryGroup, "")
	if static {
		require.Contains(t, before, "pod-1."+topicOrderCreated, "members by instance ID: %v", before)
		require.Contains(t, beforeRetry, "pod-1.retry", "retry members by instance ID: %v", beforeRetry)
	}

	lat := c.latencies(t, name)
	stop := make(chan struct{})
	fedFrom := time.Now().Add(5 * time.Second) // worst looks from 5s before
	fed := lat.feed(t, c.producer(t), name, 20, stop)
	// A steady stream first (the slowest orders of its first 5s are the
	// baseline), then the kill, with orders in flight and retries waiting.
	time.Sleep(10 * time.Second)

	// Down for a while, as a pod that is restarted, then back with the
	// same instance ID.
	svcB.Kill()
	killed := time.Now()
	time.Sleep(down)
	restartAt := time.Now()
	svcB.Start()
	svcB.WaitReady(2 * time.Minute)
	ready := time.Since(restartAt)
	c.waitOwners(t, 2*time.Minute, group, topicOrderCreated, 2)
	c.waitOwners(t, 2*time.Minute, retryGroup, "", 2)
	owned := time.Since(restartAt)
	time.Sleep(5 * time.Second)
	close(stop)
	n := <-fed
	lat.waitAll(t, n, 2*time.Minute, svcA, svcB)

	until := restartAt.Add(owned)
	worstOK, atOK := lat.worst(kindOK, killed, until)
	worstRetry, atRetry := lat.worst(kindFailOnce, killed, until)
	// Every order that waited for the killed instance was processed this
	// long after its restart: it consumed its partitions again by then.
	caughtUp := lat.lastProcessed(kindOK, killed, restartAt).Sub(restartAt)
	steadyOK, _ := lat.worst(kindOK, fedFrom, killed.Add(-5*time.Second))
	steadyRetry, _ := lat.worst(kindFailOnce, fedFrom, killed.Add(-5*time.Second))
	mode := "static"
	if !static {
		mode = "dynamic"
	}
	ms := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	report(t, result{
		Scenario: "restart-one-of-two-" + mode, Broker: c.Kind,
		tally:    tally{Orders: n, Processed: n},
		Injected: fmt.Sprintf("SIGKILL of one of two instances (%s membership, session timeout %s), down %s, restarted", mode, session, down),
		Recovery: fmt.Sprintf("after the restart: ready %s, both groups stable with every member owning partitions %s, "+
			"every order sent while it was down processed %s; slowest order sent around the kill took %s (sent at kill%+.2fs), "+
			"slowest order retried once after 1s took %s (sent at kill%+.2fs)",
			ms(ready), ms(owned), ms(caughtUp), ms(worstOK), atOK.Seconds(), ms(worstRetry), atRetry.Seconds()),
		Notes: fmt.Sprintf("before the kill the slowest took %s and %s", ms(steadyOK), ms(steadyRetry)),
		Took:  time.Since(started).Round(time.Second).String(),
	})
	if static {
		assert.Less(t, caughtUp, session-down, "the restarted instance consumes its partitions before its session would have timed out")
		assert.Less(t, worstRetry, session, "its retry member delivers the retries before its session would have timed out")
		assert.Equal(t, before, c.owners(t, group, topicOrderCreated), "no rebalance: every instance owns what it owned before")
		assert.Equal(t, beforeRetry, c.owners(t, retryGroup, ""), "no rebalance of the retry group")
	}
}

// owners returns, by group instance ID ("" for a member without one, and
// then only the last of them), the partitions of topic each member of group
// owns; with topic "" the partitions of every topic, as "topic/partition".
func (c *cluster) owners(t *testing.T, group, topic string) map[string][]string {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	out, _, err := describeOwners(admin, group, topic)
	require.NoError(t, err)
	return out
}

func describeOwners(admin sarama.ClusterAdmin, group, topic string) (map[string][]string, string, error) {
	gs, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return nil, "", err
	}
	if len(gs) != 1 {
		return nil, "", fmt.Errorf("group %s: %d descriptions", group, len(gs))
	}
	out := map[string][]string{}
	for _, m := range gs[0].Members {
		id := ""
		if m.GroupInstanceId != nil {
			id = *m.GroupInstanceId
		}
		a, err := m.GetMemberAssignment()
		if err != nil {
			return nil, "", err
		}
		var ps []string
		if a != nil {
			for tp, parts := range a.Topics {
				if topic != "" && tp != topic {
					continue
				}
				for _, p := range parts {
					ps = append(ps, fmt.Sprintf("%s/%d", tp, p))
				}
			}
		}
		slices.Sort(ps)
		out[id] = ps
	}
	return out, gs[0].State, nil
}

// waitOwners waits until group is Stable with members members owning
// partitions of topic (of any topic with "").
func (c *cluster) waitOwners(t *testing.T, timeout time.Duration, group, topic string, members int) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		gs, err := admin.DescribeConsumerGroups([]string{group})
		if err == nil && len(gs) == 1 {
			owning := 0
			for _, m := range gs[0].Members {
				if a, err := m.GetMemberAssignment(); err == nil && a != nil {
					for tp, ps := range a.Topics {
						if (topic == "" || tp == topic) && len(ps) > 0 {
							owning++
							break
						}
					}
				}
			}
			last = fmt.Sprintf("%s with %d members, %d owning partitions", gs[0].State, len(gs[0].Members), owning)
			if gs[0].State == "Stable" && owning == members {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s: want %d members owning partitions after %s; last seen: %s", group, members, timeout, last)
}

// latencyTracker records when each order was sent and when it was first
// processed.
type latencyTracker struct {
	prefix    string
	mu        sync.Mutex
	sent      map[string]time.Time
	kinds     map[string]orderKind
	processed map[string]time.Time
}

func (c *cluster) latencies(t *testing.T, prefix string) *latencyTracker {
	t.Helper()
	lt := &latencyTracker{prefix: prefix, sent: map[string]time.Time{}, kinds: map[string]orderKind{}, processed: map[string]time.Time{}}
	c.readFromStart(t, func(m *sarama.ConsumerMessage) {
		var v struct {
			OrderID string `json:"orderId"`
		}
		id := string(m.Key)
		if !strings.HasPrefix(id, prefix) {
			if json.Unmarshal(m.Value, &v) != nil {
				return
			}
			id = v.OrderID
		}
		if !strings.HasPrefix(id, prefix) {
			return
		}
		now := time.Now()
		lt.mu.Lock()
		if _, ok := lt.processed[id]; !ok {
			lt.processed[id] = now
		}
		lt.mu.Unlock()
	}, topicOrderProcessed)
	return lt
}

// feed sends perSecond orders a second, every other one failing once, until
// stop is closed; the channel then gives how many it sent.
func (lt *latencyTracker) feed(t *testing.T, p sarama.SyncProducer, prefix string, perSecond int, stop <-chan struct{}) <-chan int {
	t.Helper()
	out := make(chan int, 1)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stop:
				out <- n
				return
			case <-tick.C:
			}
			o := order{ID: fmt.Sprintf("%s-%06d", prefix, n), Kind: kindOK}
			if n%2 == 1 {
				o.Kind = kindFailOnce
			}
			lt.mu.Lock()
			lt.sent[o.ID] = time.Now()
			lt.kinds[o.ID] = o.Kind
			lt.mu.Unlock()
			if _, _, err := p.SendMessage(o.Record()); err != nil {
				t.Errorf("send %s: %v", o.ID, err)
				out <- n
				return
			}
			n++
		}
	}()
	return out
}

// waitAll waits until the n orders sent were all processed.
func (lt *latencyTracker) waitAll(t *testing.T, n int, timeout time.Duration, svcs ...*service) {
	t.Helper()
	waitUntil(t, timeout, fmt.Sprintf("%d orders processed", n), func() bool {
		lt.mu.Lock()
		defer lt.mu.Unlock()
		return len(lt.processed) >= n
	}, svcs...)
}

// worst returns the longest time from sending to processing of the orders
// of kind sent from 5s before mark to until, and when that order was sent,
// relative to mark.
func (lt *latencyTracker) worst(kind orderKind, mark, until time.Time) (time.Duration, time.Duration) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var worst, at time.Duration
	for id, s := range lt.sent {
		if lt.kinds[id] != kind || s.Before(mark.Add(-5*time.Second)) || s.After(until) {
			continue
		}
		if d := lt.processed[id].Sub(s); d > worst {
			worst, at = d, s.Sub(mark)
		}
	}
	return worst, at
}

// lastProcessed returns when the last of the orders of kind sent from from
// to to was processed.
func (lt *latencyTracker) lastProcessed(kind orderKind, from, to time.Time) time.Time {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var last time.Time
	for id, s := range lt.sent {
		if lt.kinds[id] == kind && !s.Before(from) && !s.After(to) && lt.processed[id].After(last) {
			last = lt.processed[id]
		}
	}
	return last
}
