package kafkaevents_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// cfgLookup turns a map into a lookup function for FromLookup.
func cfgLookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

func TestEnvFromLookupReadsEveryVariable(t *testing.T) {
	t.Parallel()

	env := map[string]string{
		"KAFKA_CLIENT_ID":                "orders",
		"KAFKA_BROKERS":                  "kafka-1:9092, kafka-2:9092",
		"KAFKA_VERSION":                  "3.6.0",
		"KAFKA_LOG_LEVEL":                "debug",
		"KAFKA_SSL_ENABLED":              "true",
		"KAFKA_SSL_CA_FILE":              "/etc/kafka/ca.pem",
		"KAFKA_SSL_CERT_FILE":            "/etc/kafka/client.pem",
		"KAFKA_SSL_KEY_FILE":             "/etc/kafka/client.key",
		"KAFKA_SSL_INSECURE_SKIP_VERIFY": "yes",
		"KAFKA_SASL_MECHANISM":           "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":            "orders-user",
		"KAFKA_SASL_PASSWORD":            " s3cr3t pa55 ",
		"KAFKA_CONSUMER_GROUP":           "orders-consumers",
		"KAFKA_SESSION_TIMEOUT":          "45s",
		"KAFKA_HEARTBEAT_INTERVAL":       "5000",
		"KAFKA_FETCH_MAX_WAIT":           "100ms",
		"KAFKA_REBALANCE_STRATEGY":       "cooperative-sticky",
		"KAFKA_SHUTDOWN_TIMEOUT":         "1m30s",
		"KAFKA_CONSUMER_CONCURRENCY":     "32",
		"KAFKA_CONSUMER_COMMIT_INTERVAL": "200ms",
		"KAFKA_REBALANCE_TIMEOUT":        "20000",
		"KAFKA_PRODUCER_IDEMPOTENT":      "on",
		"KAFKA_PRODUCER_ACKS":            "-1",
		"KAFKA_PRODUCER_COMPRESSION":     "zstd",
		"KAFKA_PRODUCER_LINGER":          "10ms",
		"KAFKA_TOPICS":                   "orders,payments",
		"KAFKA_FROM_BEGINNING":           "1",
		"KAFKA_RETRY_ENABLED":            "false",
		"KAFKA_RETRY_ATTEMPTS":           "7",
		"KAFKA_RETRY_BASE_DELAY":         "250ms",
		"KAFKA_RETRY_MAX_DELAY":          "10m",
		"KAFKA_RETRY_BACKOFF":            "linear",
		"KAFKA_RETRY_JITTER":             "0.25",
		"KAFKA_RETRY_TOPIC_MODE":         "single",
		"KAFKA_RETRY_PARTITIONS":         "6",
		"KAFKA_RETRY_REPLICATION_FACTOR": "3",
		"KAFKA_RETRY_RETENTION":          "72h",
		"KAFKA_RETRY_SEGMENT":            "30m",
		"KAFKA_DLQ_ENABLED":              "off",
		"KAFKA_DLQ_PARTITIONS":           "12",
		"KAFKA_DLQ_REPLICATION_FACTOR":   "2",
		"KAFKA_DLQ_RETENTION":            "720h",
		"KAFKA_DLQ_MAX_REPROCESS":        "9",
		"KAFKA_MONITORING_ENABLED":       "NO",
		"KAFKA_ADMIN_TOKEN":              "t0k3n-s3cr3t",
		"KAFKA_MONITORING_UI":            "false",
		"KAFKA_MONITORING_TRACE_URL":     "https://jaeger.example/trace/{traceId}",
	}
	got, err := kafkaevents.Config{}.FromLookup(cfgLookup(env))
	require.NoError(t, err)

	want := kafkaevents.Config{
		ClientID: "orders",
		Brokers:  []string{"kafka-1:9092", "kafka-2:9092"},
		Version:  "3.6.0",
		LogLevel: "debug",
		TLS: kafkaevents.TLSConfig{
			Enabled:            kafkaevents.Bool(true),
			CAFile:             "/etc/kafka/ca.pem",
			CertFile:           "/etc/kafka/client.pem",
			KeyFile:            "/etc/kafka/client.key",
			InsecureSkipVerify: true,
		},
		SASL: kafkaevents.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "orders-user", Password: " s3cr3t pa55 "},
		Consumer: kafkaevents.ConsumerConfig{
			GroupID:           "orders-consumers",
			SessionTimeout:    45 * time.Second,
			HeartbeatInterval: 5 * time.Second,
			MaxWaitTime:       100 * time.Millisecond,
			RebalanceStrategy: "cooperative-sticky",
			RebalanceTimeout:  20 * time.Second,
			ShutdownTimeout:   90 * time.Second,
			CommitInterval:    200 * time.Millisecond,
			Concurrency:       32,
		},
		Producer: kafkaevents.ProducerConfig{
			Idempotent:   kafkaevents.Bool(true),
			RequiredAcks: "-1",
			Compression:  "zstd",
			Linger:       10 * time.Millisecond,
		},
		Subscriptions: kafkaevents.SubscriptionConfig{
			Topics:        []string{"orders", "payments"},
			FromBeginning: kafkaevents.Bool(true),
		},
		Retry: kafkaevents.RetryConfig{
			Enabled:           kafkaevents.Bool(false),
			Attempts:          7,
			BaseDelay:         250 * time.Millisecond,
			MaxDelay:          10 * time.Minute,
			Backoff:           "linear",
			Jitter:            0.25,
			TopicMode:         "single",
			Partitions:        6,
			ReplicationFactor: 3,
			Retention:         72 * time.Hour,
			Segment:           30 * time.Minute,
		},
		DLQ: kafkaevents.DLQConfig{
			Enabled:           kafkaevents.Bool(false),
			Partitions:        12,
			ReplicationFactor: 2,
			Retention:         720 * time.Hour,
			MaxReprocess:      9,
		},
		Monitoring: kafkaevents.MonitoringConfig{
			Enabled: kafkaevents.Bool(false), AdminToken: "t0k3n-s3cr3t",
			UI: kafkaevents.Bool(false), TraceURL: "https://jaeger.example/trace/{traceId}",
		},
	}
	// Compare the secrets directly: the printed form (used by testify's diff)
	// redacts them.
	assert.Equal(t, want.SASL.Password, got.SASL.Password)
	assert.Equal(t, want.Monitoring.AdminToken, got.Monitoring.AdminToken)
	assert.Equal(t, want, got)
	assert.False(t, got.MonitoringEnabled())
	assert.False(t, got.DLQEnabled())
	assert.False(t, got.RetryEnabled())
	assert.True(t, got.FromBeginning())
	assert.True(t, got.Idempotent())
}

func TestEnvFromLookupPrecedence(t *testing.T) {
	t.Parallel()

	env := map[string]string{
		"KAFKA_CLIENT_ID":       "from-env",
		"KAFKA_BROKERS":         "env:9092",
		"KAFKA_RETRY_ATTEMPTS":  "9",
		"KAFKA_RETRY_ENABLED":   "true",
		"KAFKA_SESSION_TIMEOUT": "45s",
		"KAFKA_SSL_ENABLED":     "true",
		"KAFKA_RETRY_JITTER":    "0.5",
	}
	explicit := kafkaevents.Config{
		ClientID: "explicit",
		Brokers:  []string{"explicit:9092"},
		Retry:    kafkaevents.RetryConfig{Attempts: 2, Enabled: kafkaevents.Bool(false), Jitter: 0.1},
		TLS:      kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
	}
	got, err := explicit.FromLookup(cfgLookup(env))
	require.NoError(t, err)
	got.SetDefaults()

	assert.Equal(t, "explicit", got.ClientID, "explicit wins over env")
	assert.Equal(t, []string{"explicit:9092"}, got.Brokers, "explicit wins over env")
	assert.Equal(t, 2, got.Retry.Attempts, "explicit wins over env")
	assert.False(t, got.RetryEnabled(), "explicit false wins over env true")
	assert.False(t, got.TLSEnabled(), "explicit false wins over env true")
	assert.InDelta(t, 0.1, got.Retry.Jitter, 0, "explicit wins over env")
	assert.Equal(t, 45*time.Second, got.Consumer.SessionTimeout, "env wins over default")
	assert.Equal(t, 3*time.Second, got.Consumer.HeartbeatInterval, "default fills the rest")
	assert.Equal(t, "explicit-group", got.Consumer.GroupID, "defaults derive from the winning ClientID")

	assert.Equal(t, "explicit", explicit.ClientID, "the receiver is not changed")
	assert.Zero(t, explicit.Consumer.SessionTimeout, "the receiver is not changed")
}

func TestEnvTLSFollowsSASL(t *testing.T) {
	t.Parallel()

	saslEnv := map[string]string{
		"KAFKA_BROKERS":        "k:9092",
		"KAFKA_SASL_MECHANISM": "plain",
		"KAFKA_SASL_USERNAME":  "u",
		"KAFKA_SASL_PASSWORD":  "p",
	}
	withSSL := func(v string) map[string]string {
		m := map[string]string{"KAFKA_SSL_ENABLED": v}
		for k, val := range saslEnv {
			m[k] = val
		}
		return m
	}
	tests := []struct {
		name string
		base kafkaevents.Config
		env  map[string]string
		want bool
	}{
		{name: "SASL alone turns TLS on", env: saslEnv, want: true},
		{name: "explicit false with SASL stays off", base: kafkaevents.Config{TLS: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)}}, env: saslEnv, want: false},
		{name: "env false with SASL stays off", env: withSSL("false"), want: false},
		{name: "env true without SASL", env: map[string]string{"KAFKA_SSL_ENABLED": "true"}, want: true},
		{name: "nothing set is off", env: map[string]string{}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.base.FromLookup(cfgLookup(tt.env))
			require.NoError(t, err)
			got.SetDefaults()
			assert.Equal(t, tt.want, got.TLSEnabled())
		})
	}
}

func TestEnvSetValuesAreNotParsed(t *testing.T) {
	t.Parallel()

	// A variable for a field that is already set is not read, so its bad
	// value is no error.
	in := kafkaevents.Config{Retry: kafkaevents.RetryConfig{Attempts: 4}}
	got, err := in.FromLookup(cfgLookup(map[string]string{"KAFKA_RETRY_ATTEMPTS": "three"}))
	require.NoError(t, err)
	assert.Equal(t, 4, got.Retry.Attempts)
}

func TestEnvEnumsAreCheckedByValidate(t *testing.T) {
	t.Parallel()

	got, err := kafkaevents.Config{}.FromLookup(cfgLookup(map[string]string{
		"KAFKA_BROKERS":       "k:9092",
		"KAFKA_RETRY_BACKOFF": "fibonacci",
	}))
	require.NoError(t, err)
	got.SetDefaults()
	err = got.Validate()
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `Retry.Backoff = "fibonacci": want one of exponential, linear (env KAFKA_RETRY_BACKOFF)`)
}

// TestEnvFromEnv sets process variables, so it must not run in parallel.
func TestEnvFromEnv(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "from-env:9092")
	t.Setenv("KAFKA_RETRY_BASE_DELAY", "1500")
	t.Setenv("KAFKA_CLIENT_ID", "")

	got, err := kafkaevents.Config{}.FromEnv()
	require.NoError(t, err)
	assert.Equal(t, []string{"from-env:9092"}, got.Brokers)
	assert.Equal(t, 1500*time.Millisecond, got.Retry.BaseDelay)
	assert.Empty(t, got.ClientID)

	t.Setenv("KAFKA_RETRY_ATTEMPTS", "three")
	_, err = kafkaevents.Config{}.FromEnv()
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `KAFKA_RETRY_ATTEMPTS="three"`)
}

// TestEnvLinger: 0 in the environment is NoLinger (a zero field takes the
// default); a field already set wins; a negative value is refused.
func TestEnvLinger(t *testing.T) {
	t.Parallel()
	read := func(base kafkaevents.Config, v string) (kafkaevents.Config, error) {
		got, err := base.FromLookup(cfgLookup(map[string]string{"KAFKA_BROKERS": "k:9092", "KAFKA_PRODUCER_LINGER": v}))
		got.SetDefaults()
		return got, err
	}
	got, err := read(kafkaevents.Config{}, "0")
	require.NoError(t, err)
	assert.Equal(t, kafkaevents.NoLinger, got.Producer.Linger)
	require.NoError(t, got.Validate())

	got, err = read(kafkaevents.Config{}, "")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Millisecond, got.Producer.Linger, "unset: the default")

	got, err = read(kafkaevents.Config{Producer: kafkaevents.ProducerConfig{Linger: 20 * time.Millisecond}}, "0")
	require.NoError(t, err)
	assert.Equal(t, 20*time.Millisecond, got.Producer.Linger, "the field wins")

	_, err = read(kafkaevents.Config{}, "-1ms")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `KAFKA_PRODUCER_LINGER="-1ms"`)
}
