package kafkaevents_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

func TestConfigInstanceID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      string
		version string
		// want is the single problem line; empty when the config is valid.
		want string
	}{
		{name: "pod name", id: "orders-0"},
		{name: "dots and underscores", id: "orders.eu_west-1.pod-3"},
		{name: "spaces around are trimmed", id: "  orders-0 "},
		{name: "200 characters", id: strings.Repeat("a", 200)},
		{name: "Kafka 2.3.0", id: "orders-0", version: "2.3.0"},
		{
			name: "slash", id: "orders/0",
			want: `Consumer.InstanceID = "orders/0": want at most 200 letters, digits, '.', '_' and '-' (not "." or ".."), such as the pod name "orders-0" (env KAFKA_CONSUMER_INSTANCE_ID)`,
		},
		{
			name: "dot", id: ".",
			want: `Consumer.InstanceID = ".": want at most 200 letters, digits, '.', '_' and '-' (not "." or ".."), such as the pod name "orders-0" (env KAFKA_CONSUMER_INSTANCE_ID)`,
		},
		{
			name: "201 characters", id: strings.Repeat("a", 201),
			want: `Consumer.InstanceID = "` + strings.Repeat("a", 201) + `": want at most 200 letters`,
		},
		{
			name: "Kafka too old", id: "orders-0", version: "2.2.0",
			want: `Consumer.InstanceID = "orders-0" needs Version 2.3.0 or newer for static membership, got "2.2.0" (env KAFKA_CONSUMER_INSTANCE_ID)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := kafkaevents.Config{Brokers: []string{"localhost:9092"}, Version: tt.version}
			cfg.Consumer.InstanceID = tt.id
			cfg.SetDefaults()
			err := cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				assert.Equal(t, strings.TrimSpace(tt.id), cfg.Consumer.InstanceID)
				_, err := cfg.Sarama()
				require.NoError(t, err, "sarama accepts it")
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, 2, "one problem: %s", err)
			assert.True(t, strings.HasPrefix(lines[1], tt.want), "got %s\nwant %s", lines[1], tt.want)
		})
	}
}

// TestConfigInstanceIDFromEnv: KAFKA_CONSUMER_INSTANCE_ID sets the field, as
// the pod name does through the Downward API; a field already set wins; a
// bad value is reported by FromLookup with the variable.
func TestConfigInstanceIDFromEnv(t *testing.T) {
	t.Parallel()
	lookup := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	cfg, err := kafkaevents.Config{}.FromLookup(lookup(map[string]string{"KAFKA_CONSUMER_INSTANCE_ID": "orders-1"}))
	require.NoError(t, err)
	assert.Equal(t, "orders-1", cfg.Consumer.InstanceID)

	set := kafkaevents.Config{Consumer: kafkaevents.ConsumerConfig{InstanceID: "mine"}}
	cfg, err = set.FromLookup(lookup(map[string]string{"KAFKA_CONSUMER_INSTANCE_ID": "orders-1"}))
	require.NoError(t, err)
	assert.Equal(t, "mine", cfg.Consumer.InstanceID)

	_, err = kafkaevents.Config{}.FromLookup(lookup(map[string]string{
		"KAFKA_CONSUMER_INSTANCE_ID": "orders 1", "KAFKA_RETRY_ATTEMPTS": "three",
	}))
	require.Error(t, err)
	assert.True(t, errors.Is(err, kafkaevents.ErrInvalidConfig))
	assert.Contains(t, err.Error(), `Consumer.InstanceID = "orders 1": want at most 200 letters`)
	assert.Contains(t, err.Error(), "(env KAFKA_CONSUMER_INSTANCE_ID)")
}

// TestConfigSaramaLeavesInstanceIDToEachMember: Sarama does not put the
// configured ID in the shared sarama configuration: each member of the
// process gets an ID of its own, derived from it.
func TestConfigSaramaLeavesInstanceIDToEachMember(t *testing.T) {
	t.Parallel()
	cfg := kafkaevents.Config{Brokers: []string{"localhost:9092"}}
	cfg.Consumer.InstanceID = "orders-0"
	sc, err := cfg.Sarama()
	require.NoError(t, err)
	assert.Empty(t, sc.Consumer.Group.InstanceId)
}
