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

// Reading the environment reports every variable that does not parse
// together with the validation problems of the variables that did, one per
// line, in the order of the table in docs/configuration.md.
func TestEnvReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	in := kafkaevents.Config{ClientID: "orders"}
	got, err := in.FromLookup(cfgLookup(map[string]string{
		"KAFKA_BROKERS":              "localhost:9092",
		"KAFKA_RETRY_ATTEMPTS":       "abc",
		"KAFKA_CONSUMER_CONCURRENCY": "99999",
		"KAFKA_SESSION_TIMEOUT":      "soon",
		"KAFKA_SASL_MECHANISM":       "FOO",
	}))
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Equal(t, in, got, "on error the receiver comes back unchanged")
	assert.Equal(t, []string{
		`SASL.Mechanism = "foo": want one of plain, scram-sha-256, scram-sha-512 (env KAFKA_SASL_MECHANISM)`,
		`KAFKA_SESSION_TIMEOUT="soon": want a non-negative duration such as 500ms, 2s or 1m30s, or a whole number of milliseconds`,
		`Consumer.Concurrency = 99999: want 1 to 512 records of a partition in flight (env KAFKA_CONSUMER_CONCURRENCY)`,
		`KAFKA_RETRY_ATTEMPTS="abc": want a whole number`,
	}, cfgProblems(t, err))
	assert.Len(t, strings.Split(err.Error(), "\n"), 5, "the sentinel and one line per problem: %q", err.Error())
	assert.NotContains(t, err.Error(), "SASL.Username", "an unknown mechanism says nothing of the credentials")
	assert.NotContains(t, err.Error(), "SASL.Password", "an unknown mechanism says nothing of the credentials")
}

// A problem that only follows from a value that does not parse, or that is
// itself invalid, is not reported: fixing that value is what the user has to
// do, and the check runs again then. A value that is missing although what
// was set requires it is reported.
func TestEnvNoDerivedComplaints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "an unknown mechanism alone",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_SASL_MECHANISM": "FOO"},
			want: []string{`SASL.Mechanism = "foo": want one of plain, scram-sha-256, scram-sha-512 (env KAFKA_SASL_MECHANISM)`},
		},
		{
			name: "a known mechanism without credentials, next to a bad number",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_SASL_MECHANISM": "plain", "KAFKA_RETRY_ATTEMPTS": "abc"},
			want: []string{
				`SASL.Username is empty: want a username when SASL.Mechanism is "plain" (env KAFKA_SASL_USERNAME)`,
				`SASL.Password is empty: want a password when SASL.Mechanism is "plain" (env KAFKA_SASL_PASSWORD)`,
				`KAFKA_RETRY_ATTEMPTS="abc": want a whole number`,
			},
		},
		{
			name: "credentials without a mechanism, next to a bad number",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_SASL_USERNAME": "u", "KAFKA_RETRY_ATTEMPTS": "abc"},
			want: []string{
				`SASL.Mechanism is empty but SASL.Username or SASL.Password is set: want one of plain, scram-sha-256, scram-sha-512 (env KAFKA_SASL_MECHANISM)`,
				`KAFKA_RETRY_ATTEMPTS="abc": want a whole number`,
			},
		},
		{
			name: "a session timeout that does not parse and a heartbeat above its default",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_SESSION_TIMEOUT": "soon", "KAFKA_HEARTBEAT_INTERVAL": "40s"},
			want: []string{`KAFKA_SESSION_TIMEOUT="soon": want a non-negative duration such as 500ms, 2s or 1m30s, or a whole number of milliseconds`},
		},
		{
			name: "a max delay that does not parse and a base delay and retention against its default",
			env: map[string]string{
				"KAFKA_BROKERS": "localhost:9092", "KAFKA_RETRY_MAX_DELAY": "soon",
				"KAFKA_RETRY_BASE_DELAY": "1m", "KAFKA_RETRY_RETENTION": "10s",
			},
			want: []string{`KAFKA_RETRY_MAX_DELAY="soon": want a non-negative duration such as 500ms, 2s or 1m30s, or a whole number of milliseconds`},
		},
		{
			name: "a heartbeat against a session timeout that parsed, next to a bad number",
			env: map[string]string{
				"KAFKA_BROKERS": "localhost:9092", "KAFKA_SESSION_TIMEOUT": "10s",
				"KAFKA_HEARTBEAT_INTERVAL": "40s", "KAFKA_RETRY_ATTEMPTS": "abc",
			},
			want: []string{
				`Consumer.HeartbeatInterval = 40s: want less than Consumer.SessionTimeout (10s) (env KAFKA_HEARTBEAT_INTERVAL)`,
				`KAFKA_RETRY_ATTEMPTS="abc": want a whole number`,
			},
		},
		{
			name: "unknown acks with idempotence",
			env:  map[string]string{"KAFKA_BROKERS": "localhost:9092", "KAFKA_PRODUCER_IDEMPOTENT": "true", "KAFKA_PRODUCER_ACKS": "some"},
			want: []string{`Producer.RequiredAcks = "some": want one of all, leader, none (env KAFKA_PRODUCER_ACKS)`},
		},
		{
			name: "a version out of range with zstd and cooperative-sticky",
			env: map[string]string{
				"KAFKA_BROKERS": "localhost:9092", "KAFKA_VERSION": "0.11.0.2",
				"KAFKA_PRODUCER_COMPRESSION": "zstd", "KAFKA_REBALANCE_STRATEGY": "cooperative-sticky",
			},
			want: []string{`Version = "0.11.0.2": want a version from 1.0.0 to 4.3.1 (env KAFKA_VERSION)`},
		},
		{
			// The caller may still set what no variable set before New,
			// which validates the whole config (the reference service
			// starts a broker of its own when KAFKA_BROKERS is unset).
			name: "a bad number without brokers",
			env:  map[string]string{"KAFKA_RETRY_ATTEMPTS": "abc"},
			want: []string{`KAFKA_RETRY_ATTEMPTS="abc": want a whole number`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := fromEnv(tc.env)
			assert.Equal(t, tc.want, cfgProblems(t, err))
		})
	}
}
