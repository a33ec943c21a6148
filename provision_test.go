package kafkaevents_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

func TestProvisionTopics(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("prov")
	cfg.Retry.Partitions = 4
	cfg.Retry.Retention = 2 * time.Hour
	cfg.Retry.Segment = 30 * time.Minute
	cfg.DLQ.Partitions = 5
	cfg.DLQ.Retention = 48 * time.Hour
	topic := uniq("prov-in")
	env.createTopics(t, 1, topic)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Prov.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	specs := rn.Stack.Topics()
	// Exponential 100ms, 200ms, 400ms: three lanes, the DLQ and its runs.
	require.Len(t, specs, 5)
	assert.Equal(t, cfg.ServiceName+".retry.100ms", specs[0].Name)
	assert.Equal(t, cfg.ServiceName+".retry.200ms", specs[1].Name)
	assert.Equal(t, cfg.ServiceName+".retry.400ms", specs[2].Name)
	assert.Equal(t, cfg.ServiceName+".dlq", specs[3].Name)
	assert.Equal(t, cfg.ServiceName+".dlq.runs", specs[4].Name)

	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	for _, sp := range specs {
		meta, err := admin.DescribeTopics([]string{sp.Name})
		require.NoError(t, err)
		require.Equal(t, sarama.ErrNoError, meta[0].Err, sp.Name)
		assert.Len(t, meta[0].Partitions, int(sp.Partitions), sp.Name)
		results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: sp.Name, ConfigNames: []string{"retention.ms", "segment.ms"}}}, sarama.DescribeConfigsOptions{})
		require.NoError(t, err)
		require.Len(t, results, 1)
		require.Equal(t, sarama.ErrNoError, results[0].ErrorCode, results[0].ErrorMsg)
		got := map[string]string{}
		for _, e := range results[0].Configs {
			got[e.Name] = e.Value
		}
		switch sp.Name {
		case cfg.ServiceName + ".dlq.runs":
			assert.Equal(t, "-1", got["retention.ms"], "the runs are kept")
		case cfg.ServiceName + ".dlq":
			assert.Equal(t, strconv.FormatInt((48*time.Hour).Milliseconds(), 10), got["retention.ms"])
		default:
			assert.Equal(t, strconv.FormatInt((2*time.Hour).Milliseconds(), 10), got["retention.ms"], sp.Name)
			assert.Equal(t, strconv.FormatInt((30*time.Minute).Milliseconds(), 10), got["segment.ms"], sp.Name)
		}
	}
	// Provisioning again is a no-op on existing topics.
	require.NoError(t, rn.Stack.Provision(t.Context()))
}

func TestProvisionRefusedIsAClearError(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("refused")
	cfg.DLQ.ReplicationFactor = 3 // one broker
	cfg.Retry.Enabled = kafkaevents.Bool(false)
	s, err := kafkaevents.New(cfg, kafkaevents.WithLogger(nil))
	require.NoError(t, err)
	defer s.Close()
	err = s.Provision(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), cfg.ServiceName+".dlq")
	assert.Contains(t, err.Error(), "replication factor 3")
}
