package kafkaevents_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestSaramaReadTimeoutOutlastsRebalanceTimeout: the broker may hold a
// JoinGroup for the whole rebalance timeout while a crashed member is still
// counted; a read timeout below it made sarama abandon the join, join again
// as a new member and wait again, so a service restarted after a crash during
// its own join never consumed (chaos.TestCrashDuringJoin).
func TestSaramaReadTimeoutOutlastsRebalanceTimeout(t *testing.T) {
	sc, err := kafkaevents.Config{Brokers: []string{"localhost:9092"}}.Sarama()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, sc.Net.ReadTimeout, sc.Consumer.Group.Rebalance.Timeout+5*time.Second)
	assert.Equal(t, 65*time.Second, sc.Net.ReadTimeout, "the 60s default rebalance timeout plus 5s")

	short := kafkaevents.Config{Brokers: []string{"localhost:9092"}}
	short.Consumer.RebalanceTimeout = 10 * time.Second
	sc, err = short.Sarama()
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, sc.Consumer.Group.Rebalance.Timeout)
	assert.Equal(t, 30*time.Second, sc.Net.ReadTimeout, "sarama's 30s default already outlasts 15s")

	short.Consumer.RebalanceTimeout = -time.Second
	_, err = short.Sarama()
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KAFKA_REBALANCE_TIMEOUT")
}
