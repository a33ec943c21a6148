package kafkaevents_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// fromEnv reads env over a config with one broker, applies the defaults and
// validates it.
func fromEnv(env map[string]string) (kafkaevents.Config, error) {
	cfg, err := kafkaevents.Config{ClientID: "orders"}.FromLookup(cfgLookup(env))
	if err != nil {
		return cfg, err
	}
	cfg.SetDefaults()
	return cfg, cfg.Validate()
}

// The mistakes of a first configuration get an error that names the
// variable that was set and says what to write instead.
func TestConfigMistakesNameTheVariableSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "semicolons in the broker list",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092;localhost:9093"},
			want: []string{"KAFKA_BROKERS", "comma-separated", "localhost:9092;localhost:9093"},
		},
		{
			name: "spaces in the broker list",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092 localhost:9093"},
			want: []string{"KAFKA_BROKERS", "comma-separated"},
		},
		{
			name: "a bare number of seconds as base delay",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_BASE_DELAY": "5"},
			want: []string{`KAFKA_RETRY_BASE_DELAY="5"`, "such as 5s", "retry.5ms", "write 5ms if you mean it"},
		},
		{
			name: "a bare number of seconds as max delay",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_MAX_DELAY": "30"},
			want: []string{`KAFKA_RETRY_MAX_DELAY="30"`, "such as 30s"},
		},
		{
			name: "a max delay below the base delay, both set",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_BASE_DELAY": "2s", "KAFKA_RETRY_MAX_DELAY": "1s"},
			want: []string{"Retry.BaseDelay = 2s", "KAFKA_RETRY_BASE_DELAY"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fromEnv(tc.env)
			require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// Setting one bound alone is valid: the defaults of the other follow it
// instead of failing with an error about a variable that was not set.
func TestConfigDefaultsFollowTheBoundSet(t *testing.T) {
	t.Parallel()
	cfg, err := fromEnv(map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_MAX_DELAY": "100ms"})
	require.NoError(t, err)
	assert.Equal(t, 100*time.Millisecond, cfg.Retry.BaseDelay, "the base delay defaults to the cap when that is shorter than 1s")

	cfg, err = fromEnv(map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_SESSION_TIMEOUT": "6s"})
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.Consumer.HeartbeatInterval, "a third of a session timeout below 9s")

	cfg, err = fromEnv(map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_BASE_DELAY": "100", "KAFKA_RETRY_MAX_DELAY": "2000"})
	require.NoError(t, err, "bare numbers of 100 and more are milliseconds")
	assert.Equal(t, 100*time.Millisecond, cfg.Retry.BaseDelay)
	assert.Equal(t, 2*time.Second, cfg.Retry.MaxDelay)
}

// Several problems come one per line.
func TestConfigErrorsOnePerLine(t *testing.T) {
	t.Parallel()
	_, err := fromEnv(map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_ATTEMPTS": "three", "KAFKA_RETRY_JITTER": "2"})
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, "the sentinel and one line per variable: %q", err.Error())
	assert.Contains(t, lines[1], "KAFKA_RETRY_ATTEMPTS")
	assert.Contains(t, lines[2], "KAFKA_RETRY_JITTER")
}
