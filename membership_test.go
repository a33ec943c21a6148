package kafkaevents_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestStaticMemberRestartGetsItsPartitionsBack: two instances of a service
// with static membership (Consumer.InstanceID) share a topic. One is stopped
// without leaving its group (a static member's Close sends no LeaveGroup,
// as after a kill) while records keep coming, and started again with the
// same ID. Its member stays in the group while it is gone, its partitions
// wait for it instead of moving to the other instance, and it gets them
// back, without a rebalance, long before its session would time out; every
// record is handled.
func TestStaticMemberRestartGetsItsPartitionsBack(t *testing.T) {
	env := newEnv(t)
	const session = 20 * time.Second
	base := env.baseConfig("static")
	topic := base.ServiceName + ".events"
	env.createTopics(t, 4, topic)
	base.Consumer.SessionTimeout = session
	base.Consumer.HeartbeatInterval = 200 * time.Millisecond
	base.Consumer.RebalanceTimeout = 10 * time.Second
	base.Consumer.CommitInterval = 100 * time.Millisecond

	var mu sync.Mutex
	handled := map[string][]string{}   // key -> instances that handled it
	partitions := map[string][]int32{} // instance -> partitions it handled records of
	startInstance := func(id string) *running {
		cfg := base
		cfg.Consumer.InstanceID = id
		return start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
			_, err := s.AddHandler(r, topic, "events", func(msg *message.Message) error {
				p, _ := kafka.MessagePartitionFromCtx(msg.Context())
				key, _ := kafka.MessageKeyFromCtx(msg.Context())
				mu.Lock()
				defer mu.Unlock()
				handled[string(key)] = append(handled[string(key)], id)
				if !slices.Contains(partitions[id], p) {
					partitions[id] = append(partitions[id], p)
				}
				return nil
			})
			require.NoError(t, err)
		})
	}
	group := base.Consumer.GroupID
	// Each member's ID is derived from the instance's: {InstanceID}.{topic}.
	memberA, memberB := "pod-0."+topic, "pod-1."+topic

	startInstance("pod-0")
	b := startInstance("pod-1")
	env.waitMembers(t, group, 2, 60*time.Second)
	owned := ownedByInstance(t, env, group, topic)
	require.Len(t, owned[memberA], 2, "assignment %v", owned)
	require.Len(t, owned[memberB], 2, "assignment %v", owned)
	retryOwned := ownedByInstance(t, env, group+".retry", "")
	require.Contains(t, retryOwned, "pod-0.retry", "retry group members %v", retryOwned)
	require.Contains(t, retryOwned, "pod-1.retry", "retry group members %v", retryOwned)

	producer, err := sarama.NewSyncProducerFromClient(env.client(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = producer.Close() })
	send := func(from, n int) []string {
		var keys []string
		for i := from; i < from+n; i++ {
			key := fmt.Sprintf("k%03d", i)
			keys = append(keys, key)
			_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("v")})
			require.NoError(t, err)
		}
		return keys
	}
	allHandled := func(keys []string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range keys {
				if len(handled[k]) == 0 {
					return false
				}
			}
			return true
		}
	}
	first := send(0, 40)
	require.Eventually(t, allHandled(first), 30*time.Second, 20*time.Millisecond)

	b.Stop()
	stopped := time.Now()
	mu.Lock()
	partitions = map[string][]int32{}
	mu.Unlock()
	// The stopped member is still in the group, holding its partitions.
	owned = ownedByInstance(t, env, group, topic)
	require.Len(t, owned[memberB], 2, "a static member stays in its group after Close: %v", owned)
	second := send(40, 40)

	startInstance("pod-1") // stopped at cleanup, as the others
	require.Eventually(t, allHandled(second), session, 20*time.Millisecond, "the restarted member did not handle its partitions' records within the session timeout")
	back := time.Since(stopped)
	t.Logf("stopped and restarted: every record of its partitions handled %s after the stop", back.Round(time.Millisecond))
	require.Less(t, back, session)

	mu.Lock()
	got := partitions
	mu.Unlock()
	require.ElementsMatch(t, owned[memberA], got["pod-0"], "the running instance kept its partitions and got none of the stopped one's")
	require.ElementsMatch(t, owned[memberB], got["pod-1"], "the restarted instance got its own partitions back")
	require.Equal(t, owned, ownedByInstance(t, env, group, topic), "no rebalance: the assignment is the one from before")
}

// ownedByInstance returns the partitions of topic that each member of group
// owns, by group instance ID (every member with none when topic is ""); a
// member without an instance ID is listed as "".
func ownedByInstance(t *testing.T, env *testEnv, group, topic string) map[string][]int32 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	gs, err := admin.DescribeConsumerGroups([]string{group})
	require.NoError(t, err)
	require.Len(t, gs, 1)
	out := map[string][]int32{}
	for _, m := range gs[0].Members {
		id := ""
		if m.GroupInstanceId != nil {
			id = *m.GroupInstanceId
		}
		a, err := m.GetMemberAssignment()
		require.NoError(t, err)
		var ps []int32
		if a != nil && topic != "" {
			ps = slices.Sorted(slices.Values(a.Topics[topic]))
		}
		out[id] = ps
	}
	return out
}
