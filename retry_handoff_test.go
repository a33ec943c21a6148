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
	"github.com/torix/kafkaevents/wire"
)

// handoffRig is a one-partition topic whose handler fails the first
// delivery of "m-0" only, on the embedded broker, with the means to refuse
// retry records and to read the group's committed offset.
type handoffRig struct {
	env   *testEnv
	topic string
	cfg   kafkaevents.Config
	admin sarama.ClusterAdmin

	// permanent makes every delivery of m-0 fail permanently (straight to
	// the DLQ) instead of its first delivery only.
	permanent bool

	mu         sync.Mutex
	deliveries map[string][]int // id -> retry count of each delivery
}

func newHandoffRig(t *testing.T, name string) *handoffRig {
	t.Helper()
	env := newEnv(t)
	if env.Broker == nil {
		t.Skip("needs the embedded broker's fault injection")
	}
	rig := &handoffRig{env: env, topic: uniq(name), cfg: env.baseConfig(name), deliveries: map[string][]int{}}
	env.createTopics(t, 1, rig.topic)
	rig.cfg.Retry.Attempts = 2
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	rig.admin = admin
	return rig
}

// start runs a stack with the rig's handler.
func (rig *handoffRig) start(t *testing.T) *running {
	t.Helper()
	return start(t, rig.cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, rig.topic, "Handoff.handle", func(msg *message.Message) error {
			id := string(msg.Payload)
			rig.mu.Lock()
			rig.deliveries[id] = append(rig.deliveries[id], wire.DeliveryOf(msg).RetryCount)
			first := len(rig.deliveries[id]) == 1
			rig.mu.Unlock()
			if id == "m-0" && rig.permanent {
				return wire.Permanent(errors.New("m-0 cannot be handled"))
			}
			if id == "m-0" && first {
				return errors.New("first delivery of m-0 fails")
			}
			return nil
		})
		require.NoError(t, err)
	})
}

// refuseRetries makes the broker answer every produce request to the
// stack's first retry lane with NOT_ENOUGH_REPLICAS until Remove.
func (rig *handoffRig) refuseRetries(rn *running) *kfake.FaultHandle {
	return rig.refuse(rn.Stack.RetryTopics()[0])
}

// refuse makes the broker answer every produce request to topic with
// NOT_ENOUGH_REPLICAS until Remove.
func (rig *handoffRig) refuse(topic string) *kfake.FaultHandle {
	return rig.env.Broker.Cluster().Fault(kfake.Fault{
		Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1,
	})
}

// waitFlowing waits until m-1..m-{n-1}, the messages behind the failed m-0,
// were handled while fault refuses m-0's record, and until the record was
// sent again at least once.
func (rig *handoffRig) waitFlowing(t *testing.T, n int, fault *kfake.FaultHandle) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i := 1; i < n; i++ {
			if len(rig.delivered(fmt.Sprintf("m-%d", i))) == 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the messages behind the failed one were not handled")
	require.Eventually(t, func() bool { return fault.Hits() >= 2 }, 10*time.Second, 20*time.Millisecond, "the refused record was not sent again")
}

func (rig *handoffRig) send(t *testing.T, rn *running, n int) {
	t.Helper()
	for i := range n {
		_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: rig.topic, Key: "k", Value: fmt.Sprintf("m-%d", i)})
		require.NoError(t, err)
	}
}

// delivered returns the retry counts of the deliveries of id so far.
func (rig *handoffRig) delivered(id string) []int {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return append([]int(nil), rig.deliveries[id]...)
}

// committed returns the group's committed offset of the partition, or -1.
func (rig *handoffRig) committed(t *testing.T) int64 {
	return committedOffset(t, rig.admin, rig.cfg.Consumer.GroupID, rig.topic)
}

// committedNow is committed for wait conditions (see committedOffsetNow).
func (rig *handoffRig) committedNow() int64 {
	return committedOffsetNow(rig.admin, rig.cfg.Consumer.GroupID, rig.topic)
}

// TestRetryHandoffDoesNotBlockItsPartition makes the broker refuse the retry
// record of a failed message and checks both halves of the hand-off
// contract: the messages behind the failed one keep flowing while its retry
// record is refused, and the group's committed offset stays at the failed
// message until the record is written. Then the stack is stopped with the
// record still refused: the next instance of the group gets the failed
// message again.
func TestRetryHandoffDoesNotBlockItsPartition(t *testing.T) {
	rig := newHandoffRig(t, "handoff")
	rig.cfg.Consumer.ShutdownTimeout = 2 * time.Second
	rn := rig.start(t)
	fault := rig.refuseRetries(rn)
	defer fault.Remove()

	const n = 10
	rig.send(t, rn, n)
	// Non-blocking: m-1..m-9 are handled although m-0's retry record is
	// refused.
	rig.waitFlowing(t, n, fault)
	// Nothing lost: the offset of m-0 (0) is not committed past while its
	// retry record is refused (sarama commits marked offsets every second).
	time.Sleep(2500 * time.Millisecond)
	assert.LessOrEqual(t, rig.committed(t), int64(0), "committed past the message whose retry record was refused")
	assert.Equal(t, []int{0}, rig.delivered("m-0"), "m-0 was delivered once, its retry not yet")
	assert.Zero(t, rn.Stack.RetryStats().Handlers["Handoff.handle"].Scheduled, "no retry counted as scheduled before the broker took it")

	// A stop while the record is refused leaves m-0 uncommitted.
	rn.Stop()
	assert.LessOrEqual(t, rig.committed(t), int64(0), "committed past m-0 at shutdown")

	// The next instance gets m-0 again from the main topic (the messages
	// after it too: at-least-once) and handles it; no retry record of the
	// first instance was ever written.
	fault.Remove()
	rn2 := rig.start(t)
	require.Eventually(t, func() bool { return len(rig.delivered("m-0")) >= 2 }, 30*time.Second, 20*time.Millisecond, "m-0 delivered again")
	assert.Equal(t, []int{0, 0}, rig.delivered("m-0")[:2], "the redelivery comes from the main topic")
	require.Eventually(t, func() bool { return rig.committedNow() == n }, 10*time.Second, 50*time.Millisecond, "everything committed in the end")
	rn2.Stop()
}

// TestRetryHandoffCommitsAfterTheRecordIsWritten refuses the retry record for
// a while and then accepts it: the retry is delivered, counted as scheduled
// once, and the committed offset moves past the failed message only then.
func TestRetryHandoffCommitsAfterTheRecordIsWritten(t *testing.T) {
	rig := newHandoffRig(t, "handoff-late")
	rn := rig.start(t)
	fault := rig.refuseRetries(rn)
	defer fault.Remove()

	const n = 5
	rig.send(t, rn, n)
	require.Eventually(t, func() bool {
		return len(rig.delivered("m-4")) == 1 && fault.Hits() >= 2
	}, 20*time.Second, 20*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	assert.LessOrEqual(t, rig.committed(t), int64(0))

	fault.Remove()
	require.Eventually(t, func() bool { return len(rig.delivered("m-0")) == 2 }, 30*time.Second, 20*time.Millisecond,
		"the retry of m-0 was delivered once the broker took its record")
	assert.Equal(t, []int{0, 1}, rig.delivered("m-0"))
	require.Eventually(t, func() bool { return rig.committedNow() == n }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return rn.Stack.RetryStats().Handlers["Handoff.handle"].Scheduled == 1 },
		5*time.Second, 10*time.Millisecond, "the retry counted as scheduled once")
}

// TestDLQHandoffDoesNotBlockItsPartition is the hand-off contract for the
// DLQ: while the broker refuses the DLQ record of a message that failed
// permanently, the messages behind it are handled, the committed offset
// stays at the failed message and nothing counts as stored; once the broker
// takes the record, it is in the DLQ exactly once, counted once, and the
// offset moves on.
func TestDLQHandoffDoesNotBlockItsPartition(t *testing.T) {
	rig := newHandoffRig(t, "dlq-handoff")
	rig.permanent = true
	rn := rig.start(t)
	fault := rig.refuse(rn.Stack.DLQTopic())
	defer fault.Remove()

	const n = 10
	rig.send(t, rn, n)
	rig.waitFlowing(t, n, fault)
	time.Sleep(2500 * time.Millisecond) // sarama commits marked offsets every second
	assert.LessOrEqual(t, rig.committed(t), int64(0), "committed past the message whose DLQ record was refused")
	assert.Equal(t, []int{0}, rig.delivered("m-0"), "m-0 was handled once")
	assert.Zero(t, rn.Stack.DLQStats().MessagesStored, "counted as stored before the broker took it")

	dlqRecords := rig.env.collect(t, rn.Stack.DLQTopic())
	fault.Remove()
	got := dlqRecords.WaitFor(t, 1, 20*time.Second, nil)
	assert.Equal(t, "m-0", got[0].Value)
	assert.Equal(t, string(wire.ReasonPermanent), got[0].Headers[wire.HeaderDLQReason])
	assert.Equal(t, "0", got[0].Headers[wire.HeaderOriginalOffset])
	require.Eventually(t, func() bool { return rig.committedNow() == n }, 10*time.Second, 50*time.Millisecond, "everything committed once the record was written")
	require.Eventually(t, func() bool { return rn.Stack.DLQStats().MessagesStored == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, dlqRecords.Records(nil), 1, "the DLQ record was written once")
	assert.Equal(t, []int{0}, rig.delivered("m-0"), "m-0 was not delivered again")
}
