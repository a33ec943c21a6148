package kafkaevents_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/middleware"
)

// TestRetryHandoffDoesNotBlockItsPartition makes the broker refuse the retry
// record of a failed message and checks both halves of the hand-off
// contract: the messages behind the failed one keep flowing while its retry
// record is refused, and the group's committed offset stays at the failed
// message until the record is written. Then the stack is stopped with the
// record still refused: the next instance of the group gets the failed
// message again, and once the broker accepts retry records, its retry.
func TestRetryHandoffDoesNotBlockItsPartition(t *testing.T) {
	env := newEnv(t)
	if env.Broker == nil {
		t.Skip("needs the embedded broker's fault injection")
	}
	topic := uniq("handoff")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("handoff")
	cfg.Retry.Attempts = 2
	cfg.Consumer.ShutdownTimeout = 2 * time.Second

	var mu sync.Mutex
	deliveries := map[string][]int{} // id -> retry count of each delivery
	handler := func(msg *message.Message) error {
		id := string(msg.Payload)
		mu.Lock()
		deliveries[id] = append(deliveries[id], middleware.DeliveryOf(msg).RetryCount)
		first := len(deliveries[id]) == 1
		mu.Unlock()
		if id == "m-0" && first {
			return errors.New("first delivery of m-0 fails")
		}
		return nil
	}
	setup := func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Handoff.handle", handler)
		require.NoError(t, err)
	}
	delivered := func(id string) []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), deliveries[id]...)
	}
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	committed := func() int64 {
		offsets, err := admin.ListConsumerGroupOffsets(cfg.Consumer.GroupID, map[string][]int32{topic: {0}})
		require.NoError(t, err)
		if b := offsets.GetBlock(topic, 0); b != nil {
			return b.Offset
		}
		return -1
	}

	rn := start(t, cfg, setup)
	lane := rn.Stack.RetryTopics()[0]
	fault := env.Broker.Cluster().Fault(kfake.Fault{
		Keys: []kmsg.Key{kmsg.Produce}, Topic: lane, Err: kerr.NotEnoughReplicas, Count: -1,
	})
	defer fault.Remove()

	const n = 10
	for i := range n {
		_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k", Value: fmt.Sprintf("m-%d", i)})
		require.NoError(t, err)
	}
	// Non-blocking: m-1..m-9 are handled although m-0's retry record is
	// refused.
	require.Eventually(t, func() bool {
		for i := 1; i < n; i++ {
			if len(delivered(fmt.Sprintf("m-%d", i))) == 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the messages behind the failed one were not handled")
	require.Eventually(t, func() bool { return fault.Hits() >= 2 }, 10*time.Second, 20*time.Millisecond, "the retry record was sent again")
	// Nothing lost: the offset of m-0 (0) is not committed past while its
	// retry record is refused (sarama commits marked offsets every second).
	time.Sleep(2500 * time.Millisecond)
	assert.LessOrEqual(t, committed(), int64(0), "committed past the message whose retry record was refused")
	assert.Equal(t, []int{0}, delivered("m-0"), "m-0 was delivered once, its retry not yet")
	assert.Zero(t, rn.Stack.RetryStats().Handlers["Handoff.handle"].Scheduled, "no retry counted as scheduled before the broker took it")

	// A stop while the record is refused leaves m-0 uncommitted.
	rn.Stop()
	assert.LessOrEqual(t, committed(), int64(0), "committed past m-0 at shutdown")

	// The next instance gets m-0 again from the main topic (the messages
	// after it too: at-least-once) and handles it; no retry record of the
	// first instance was ever written.
	fault.Remove()
	rn2 := start(t, cfg, setup)
	require.Eventually(t, func() bool { return len(delivered("m-0")) >= 2 }, 30*time.Second, 20*time.Millisecond, "m-0 delivered again")
	assert.Equal(t, []int{0, 0}, delivered("m-0")[:2], "the redelivery comes from the main topic")
	require.Eventually(t, func() bool { return committed() == n }, 10*time.Second, 50*time.Millisecond, "everything committed in the end")
	rn2.Stop()
}

// TestRetryHandoffCommitsAfterTheRecordIsWritten refuses the retry record for
// a while and then accepts it: the retry is delivered, counted as scheduled
// once, and the committed offset moves past the failed message only then.
func TestRetryHandoffCommitsAfterTheRecordIsWritten(t *testing.T) {
	env := newEnv(t)
	if env.Broker == nil {
		t.Skip("needs the embedded broker's fault injection")
	}
	topic := uniq("handoff-late")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("handoff-late")
	cfg.Retry.Attempts = 2

	var mu sync.Mutex
	deliveries := map[string][]int{}
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Handoff.late", func(msg *message.Message) error {
			id := string(msg.Payload)
			mu.Lock()
			deliveries[id] = append(deliveries[id], middleware.DeliveryOf(msg).RetryCount)
			first := len(deliveries[id]) == 1
			mu.Unlock()
			if id == "m-0" && first {
				return errors.New("first delivery of m-0 fails")
			}
			return nil
		})
		require.NoError(t, err)
	})
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	committed := func() int64 {
		offsets, err := admin.ListConsumerGroupOffsets(cfg.Consumer.GroupID, map[string][]int32{topic: {0}})
		require.NoError(t, err)
		if b := offsets.GetBlock(topic, 0); b != nil {
			return b.Offset
		}
		return -1
	}
	fault := env.Broker.Cluster().Fault(kfake.Fault{
		Keys: []kmsg.Key{kmsg.Produce}, Topic: rn.Stack.RetryTopics()[0], Err: kerr.NotEnoughReplicas, Count: -1,
	})
	for i := range 5 {
		_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k", Value: fmt.Sprintf("m-%d", i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries["m-4"]) == 1 && fault.Hits() >= 2
	}, 20*time.Second, 20*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	assert.LessOrEqual(t, committed(), int64(0))

	fault.Remove()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries["m-0"]) == 2
	}, 30*time.Second, 20*time.Millisecond, "the retry of m-0 was delivered once the broker took its record")
	mu.Lock()
	assert.Equal(t, []int{0, 1}, deliveries["m-0"])
	mu.Unlock()
	require.Eventually(t, func() bool { return committed() == 5 }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, int64(1), rn.Stack.RetryStats().Handlers["Handoff.late"].Scheduled)
}
