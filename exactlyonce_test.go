package kafkaevents_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestExactlyOnceHandoffsCarryEveryRecordOnce: with exactly-once hand-offs,
// records that always fail go main → lane → lane → DLQ, each once, and
// the main and retry groups' offsets reach the end of their topics.
func TestExactlyOnceHandoffsCarryEveryRecordOnce(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("eos")
	topic := uniq("eos")
	env.createTopics(t, 2, topic)
	cfg.Producer.ExactlyOnceHandoffs = kafkaevents.Bool(true)
	cfg.Retry.Attempts = 2
	const n = 200
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "EOS.fail", func(*message.Message) error {
			return errors.New("always fails")
		}, kafkaevents.WithConcurrency(8))
		require.NoError(t, err)
	})
	p, err := sarama.NewSyncProducerFromClient(env.client(t))
	require.NoError(t, err)
	for i := range n {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 7)), Value: sarama.StringEncoder(fmt.Sprintf("r-%d", i))})
		require.NoError(t, err)
	}
	col := env.collectIsolated(t, sarama.ReadCommitted, append(rn.Stack.RetryTopics(), rn.Stack.DLQTopic())...)
	dlq := col.WaitFor(t, n, 60*time.Second, onTopic(rn.Stack.DLQTopic()))
	time.Sleep(500 * time.Millisecond)
	seen := map[string]int{}
	for _, r := range col.Records(nil) {
		seen[r.Topic+" "+r.Value]++
	}
	for k, c := range seen {
		assert.Equal(t, 1, c, "copies of %s", k)
	}
	assert.Len(t, dlq, n)
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return committedSum(admin, cfg.Consumer.GroupID, topic, 2) == n
	}, 20*time.Second, 50*time.Millisecond, "main group's committed offsets")
}

// committedSum returns the sum of the committed offsets of the first
// partitions of topic for group, -1 on an error or when one has none.
func committedSum(admin sarama.ClusterAdmin, group, topic string, partitions int32) int64 {
	parts := make([]int32, partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range parts {
		b := offsets.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError || b.Offset < 0 {
			return -1
		}
		sum += b.Offset
	}
	return sum
}
