package kafkaevents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Static membership (Config.Consumer.InstanceID): every consumer group
// member of the process gets a group.instance.id of its own, derived from
// the configured one, because two members with the same ID in one group
// fence each other:
//
//   - GroupID: watermill-kafka runs one member per subscribed topic, each
//     "{InstanceID}.{topic}" (a second subscription of the same topic in the
//     process "{InstanceID}.{topic}.2", and so on);
//   - GroupID + ".retry": the retry consumer, "{InstanceID}.retry".
//
// DLQ reprocessing joins no group (it reads partitions and commits with no
// generation), so it has no instance ID. The IDs depend only on the
// configured ID and the topics, so a restarted instance takes its members'
// places again.

// maxGroupInstanceIDLen is the longest group.instance.id Kafka accepts.
const maxGroupInstanceIDLen = 249

// memberInstanceID returns the group.instance.id of the member of the
// process named member (a topic, or "retry"): "{base}.{member}", or "" when
// base is (dynamic membership). When that is longer than Kafka allows, the
// end of member gives way to a hash of all of it, so that the ID stays
// unique and the same across restarts.
func memberInstanceID(base, member string) string {
	if base == "" {
		return ""
	}
	id := base + "." + member
	if len(id) <= maxGroupInstanceIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(member))
	h := hex.EncodeToString(sum[:8])
	keep := maxGroupInstanceIDLen - len(base) - len(".-") - len(h)
	return base + "." + member[:keep] + "-" + h
}

// memberSubscriber is the subscriber underneath the stack's with static
// membership: it subscribes each topic through a watermill-kafka
// subscriber of its own, built by newSub with the sarama configuration
// whose Consumer.Group.InstanceId is the topic's member ID. (watermill-kafka
// builds every member of a subscriber from one sarama configuration, which
// would give them all the same ID.)
type memberSubscriber struct {
	base   string
	group  string
	newSub func(instanceID string) (message.Subscriber, error)
	logger watermill.LoggerAdapter

	mu     sync.Mutex
	count  map[string]int
	subs   []message.Subscriber
	closed bool
}

// Subscribe subscribes to topic as the static member of the next ID of
// topic.
func (m *memberSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("kafkaevents: subscriber is closed")
	}
	if m.count == nil {
		m.count = map[string]int{}
	}
	m.count[topic]++
	member := topic
	if n := m.count[topic]; n > 1 {
		member = fmt.Sprintf("%s.%d", topic, n)
	}
	id := memberInstanceID(m.base, member)
	sub, err := m.newSub(id)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.subs = append(m.subs, sub)
	m.mu.Unlock()
	m.logger.Info("Joining the consumer group as a static member", watermill.LogFields{
		"consumer_group": m.group, "group_instance_id": id, "topic": topic,
	})
	return sub.Subscribe(ctx, topic)
}

// Close closes the subscribers of every topic. A static member does not
// leave its group: its partitions wait for it until its session times out.
// It is idempotent.
func (m *memberSubscriber) Close() error {
	m.mu.Lock()
	subs := m.subs
	m.subs, m.closed = nil, true
	m.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
