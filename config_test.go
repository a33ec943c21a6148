package kafkaevents_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// cfgValid returns a config that passes Validate.
func cfgValid() kafkaevents.Config {
	c := kafkaevents.Config{Brokers: []string{"localhost:9092"}}
	c.SetDefaults()
	return c
}

// cfgProblems returns the problem lines of a Validate error, without the
// ErrInvalidConfig line.
func cfgProblems(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "want an errors.Join error, got %T", err)
	var lines []string
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, kafkaevents.ErrInvalidConfig) {
			lines = append(lines, e.Error())
		}
	}
	return lines
}

func TestConfigSetDefaults(t *testing.T) {
	t.Parallel()

	var got kafkaevents.Config
	got.SetDefaults()

	want := kafkaevents.Config{
		ClientID:    "kafkaevents",
		ServiceName: "kafkaevents",
		Version:     "2.8.0",
		LogLevel:    "info",
		Consumer: kafkaevents.ConsumerConfig{
			GroupID:           "kafkaevents-group",
			SessionTimeout:    30 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			FetchMinBytes:     1,
			FetchDefaultBytes: 1 << 20,
			FetchMaxBytes:     0,
			MaxWaitTime:       250 * time.Millisecond,
			RebalanceStrategy: "range",
			RebalanceTimeout:  60 * time.Second,
			ShutdownTimeout:   30 * time.Second,
		},
		Producer: kafkaevents.ProducerConfig{
			Idempotent:          kafkaevents.Bool(false),
			MaxInFlightRequests: 5,
			RequiredAcks:        "all",
			Compression:         "none",
			Linger:              5 * time.Millisecond,
		},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(false)},
		Retry: kafkaevents.RetryConfig{
			Enabled:           kafkaevents.Bool(true),
			Attempts:          3,
			BaseDelay:         time.Second,
			MaxDelay:          30 * time.Second,
			Backoff:           "exponential",
			TopicMode:         "lanes",
			Partitions:        3,
			ReplicationFactor: 1,
			Retention:         7 * 24 * time.Hour,
			Segment:           time.Hour,
		},
		DLQ: kafkaevents.DLQConfig{
			Enabled:           kafkaevents.Bool(true),
			Partitions:        3,
			ReplicationFactor: 1,
			Retention:         14 * 24 * time.Hour,
			MaxReprocess:      5,
		},
		Monitoring: kafkaevents.MonitoringConfig{Enabled: kafkaevents.Bool(true), Prefix: "/kafka"},
	}
	assert.Equal(t, want, got)
	assert.Nil(t, got.TLS.Enabled, "TLS.Enabled stays unset so that TLSEnabled can follow SASL")

	again := got
	again.SetDefaults()
	assert.Equal(t, got, again, "SetDefaults is idempotent")
}

func TestConfigSetDefaultsKeepsAndNormalises(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		in    kafkaevents.Config
		check func(t *testing.T, c kafkaevents.Config)
	}{
		{
			name: "service name and group follow the client id",
			in:   kafkaevents.Config{ClientID: "orders"},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, "orders", c.ServiceName)
				assert.Equal(t, "orders-group", c.Consumer.GroupID)
			},
		},
		{
			name: "explicit values are kept",
			in: kafkaevents.Config{
				ClientID: "a", ServiceName: "b", Version: "3.6.0",
				Consumer: kafkaevents.ConsumerConfig{GroupID: "g", SessionTimeout: time.Minute},
				Retry:    kafkaevents.RetryConfig{Enabled: kafkaevents.Bool(false), Attempts: 7, Jitter: 0.5},
				DLQ:      kafkaevents.DLQConfig{Enabled: kafkaevents.Bool(false), MaxReprocess: 1},
			},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, "b", c.ServiceName)
				assert.Equal(t, "3.6.0", c.Version)
				assert.Equal(t, "g", c.Consumer.GroupID)
				assert.Equal(t, time.Minute, c.Consumer.SessionTimeout)
				assert.False(t, c.RetryEnabled())
				assert.Equal(t, 7, c.Retry.Attempts)
				assert.InDelta(t, 0.5, c.Retry.Jitter, 0)
				assert.False(t, c.DLQEnabled())
				assert.Equal(t, 1, c.DLQ.MaxReprocess)
			},
		},
		{
			name: "negative values are kept for Validate",
			in:   kafkaevents.Config{Retry: kafkaevents.RetryConfig{Attempts: -1, Partitions: -2}},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, -1, c.Retry.Attempts)
				assert.Equal(t, int32(-2), c.Retry.Partitions)
			},
		},
		{
			name: "idempotent producer defaults to one request in flight",
			in:   kafkaevents.Config{Producer: kafkaevents.ProducerConfig{Idempotent: kafkaevents.Bool(true)}},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, 1, c.Producer.MaxInFlightRequests)
				assert.True(t, c.Idempotent())
			},
		},
		{
			name: "idempotent producer keeps an explicit max in flight",
			in: kafkaevents.Config{Producer: kafkaevents.ProducerConfig{
				Idempotent: kafkaevents.Bool(true), MaxInFlightRequests: 3,
			}},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, 3, c.Producer.MaxInFlightRequests)
			},
		},
		{
			name: "enums are lowered and numeric acks named",
			in: kafkaevents.Config{
				LogLevel: " DEBUG ",
				SASL:     kafkaevents.SASLConfig{Mechanism: "SCRAM-SHA-512"},
				Consumer: kafkaevents.ConsumerConfig{RebalanceStrategy: "Cooperative-Sticky"},
				Producer: kafkaevents.ProducerConfig{RequiredAcks: "-1", Compression: "ZSTD"},
				Retry:    kafkaevents.RetryConfig{Backoff: "Linear", TopicMode: "SINGLE"},
			},
			check: func(t *testing.T, c kafkaevents.Config) {
				assert.Equal(t, "debug", c.LogLevel)
				assert.Equal(t, "scram-sha-512", c.SASL.Mechanism)
				assert.Equal(t, "cooperative-sticky", c.Consumer.RebalanceStrategy)
				assert.Equal(t, "all", c.Producer.RequiredAcks)
				assert.Equal(t, "zstd", c.Producer.Compression)
				assert.Equal(t, "linear", c.Retry.Backoff)
				assert.Equal(t, "single", c.Retry.TopicMode)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.in
			c.SetDefaults()
			tt.check(t, c)
		})
	}
}

func TestConfigRequiredAcksSpellings(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, in, want string
	}{
		{name: "all", in: "all", want: "all"},
		{name: "minus one", in: "-1", want: "all"},
		{name: "leader", in: "Leader", want: "leader"},
		{name: "one", in: "1", want: "leader"},
		{name: "none", in: "NONE", want: "none"},
		{name: "zero", in: "0", want: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := kafkaevents.Config{Brokers: []string{"k:9092"}, Producer: kafkaevents.ProducerConfig{RequiredAcks: tt.in}}
			c.SetDefaults()
			assert.Equal(t, tt.want, c.Producer.RequiredAcks)
			assert.NoError(t, c.Validate())
		})
	}
}

func TestConfigAccessors(t *testing.T) {
	t.Parallel()

	var unset kafkaevents.Config
	assert.True(t, unset.RetryEnabled())
	assert.True(t, unset.DLQEnabled())
	assert.True(t, unset.MonitoringEnabled())
	assert.False(t, unset.FromBeginning())
	assert.False(t, unset.Idempotent())
	assert.False(t, unset.TLSEnabled())

	flipped := kafkaevents.Config{
		Retry:         kafkaevents.RetryConfig{Enabled: kafkaevents.Bool(false)},
		DLQ:           kafkaevents.DLQConfig{Enabled: kafkaevents.Bool(false)},
		Monitoring:    kafkaevents.MonitoringConfig{Enabled: kafkaevents.Bool(false)},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Producer:      kafkaevents.ProducerConfig{Idempotent: kafkaevents.Bool(true)},
		TLS:           kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true)},
	}
	assert.False(t, flipped.RetryEnabled())
	assert.False(t, flipped.DLQEnabled())
	assert.False(t, flipped.MonitoringEnabled())
	assert.True(t, flipped.FromBeginning())
	assert.True(t, flipped.Idempotent())
	assert.True(t, flipped.TLSEnabled())
}

func TestConfigTLSEnabled(t *testing.T) {
	t.Parallel()

	sasl := kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: "p"}
	tests := []struct {
		name string
		tls  *bool
		sasl kafkaevents.SASLConfig
		want bool
	}{
		{name: "unset without SASL is off", want: false},
		{name: "unset with SASL is on", sasl: sasl, want: true},
		{name: "explicit false with SASL stays off", tls: kafkaevents.Bool(false), sasl: sasl, want: false},
		{name: "explicit true without SASL is on", tls: kafkaevents.Bool(true), want: true},
		{name: "explicit true with SASL is on", tls: kafkaevents.Bool(true), sasl: sasl, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := kafkaevents.Config{TLS: kafkaevents.TLSConfig{Enabled: tt.tls}, SASL: tt.sasl}
			assert.Equal(t, tt.want, c.TLSEnabled())
			c.SetDefaults()
			assert.Equal(t, tt.want, c.TLSEnabled(), "after SetDefaults")
		})
	}
}

func TestConfigSlogLevel(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		level string
		want  slog.Level
	}{
		{name: "debug", level: "debug", want: slog.LevelDebug},
		{name: "info", level: "info", want: slog.LevelInfo},
		{name: "warn upper case", level: "WARN", want: slog.LevelWarn},
		{name: "error", level: "Error", want: slog.LevelError},
		{name: "unset", level: "", want: slog.LevelInfo},
		{name: "unknown", level: "verbose", want: slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, kafkaevents.Config{LogLevel: tt.level}.SlogLevel())
		})
	}
}

func TestConfigValidateAcceptsDefaults(t *testing.T) {
	t.Parallel()

	require.NoError(t, cfgValid().Validate())

	every := cfgValid()
	every.Brokers = []string{"kafka-1:9092", "10.0.0.1:9093", "[::1]:9094"}
	every.Version = "3.7.0"
	every.Subscriptions.Topics = []string{"orders", "payments.v1", "a_b-c"}
	every.SASL = kafkaevents.SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"}
	every.Consumer.RebalanceStrategy = "cooperative-sticky"
	every.Producer = kafkaevents.ProducerConfig{
		Idempotent: kafkaevents.Bool(true), MaxInFlightRequests: 1, RequiredAcks: "all", Compression: "zstd",
	}
	every.Retry.Jitter = 1
	every.Retry.Backoff = "linear"
	every.Retry.TopicMode = "single"
	every.Retry.BaseDelay = every.Retry.MaxDelay
	require.NoError(t, every.Validate())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()

	pki := cfgNewTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tests := []struct {
		name   string
		mutate func(c *kafkaevents.Config)
		// want are substrings of the single problem line: the field, the bad
		// value and what is allowed.
		want []string
	}{
		{
			name:   "no brokers",
			mutate: func(c *kafkaevents.Config) { c.Brokers = nil },
			want:   []string{"Brokers is empty", "host:port", "KAFKA_BROKERS"},
		},
		{
			name:   "broker without port",
			mutate: func(c *kafkaevents.Config) { c.Brokers = []string{"localhost:9092", "kafka-2"} },
			want:   []string{"Brokers[1]", `"kafka-2"`, "host:port"},
		},
		{
			name:   "broker with a port that is not a number",
			mutate: func(c *kafkaevents.Config) { c.Brokers = []string{"kafka:http"} },
			want:   []string{"Brokers[0]", `"kafka:http"`, "port must be a number from 1 to 65535"},
		},
		{
			name:   "broker with port zero",
			mutate: func(c *kafkaevents.Config) { c.Brokers = []string{"kafka:0"} },
			want:   []string{"Brokers[0]", `"kafka:0"`, "host:port"},
		},
		{
			name:   "broker without host",
			mutate: func(c *kafkaevents.Config) { c.Brokers = []string{":9092"} },
			want:   []string{"Brokers[0]", `":9092"`, "host:port"},
		},
		{
			name:   "service name unfit for topics",
			mutate: func(c *kafkaevents.Config) { c.ServiceName = "my service" },
			want:   []string{"ServiceName", `"my service"`, "letters, digits, '.', '_' and '-'"},
		},
		{
			name:   "unparsable version",
			mutate: func(c *kafkaevents.Config) { c.Version = "2.8" },
			want:   []string{"Version", `"2.8"`, `"2.8.0"`, "KAFKA_VERSION"},
		},
		{
			name:   "version before 1.0.0",
			mutate: func(c *kafkaevents.Config) { c.Version = "0.11.0.2" },
			want:   []string{"Version", `"0.11.0.2"`, "from 1.0.0 to"},
		},
		{
			name:   "version newer than sarama knows",
			mutate: func(c *kafkaevents.Config) { c.Version = "99.0.0" },
			want:   []string{"Version", `"99.0.0"`, "from 1.0.0 to"},
		},
		{
			name:   "unknown log level",
			mutate: func(c *kafkaevents.Config) { c.LogLevel = "verbose" },
			want:   []string{"LogLevel", `"verbose"`, "debug, info, warn, error", "KAFKA_LOG_LEVEL"},
		},
		{
			name:   "bad topic name",
			mutate: func(c *kafkaevents.Config) { c.Subscriptions.Topics = []string{"ok", "no/slash"} },
			want:   []string{"Subscriptions.Topics[1]", `"no/slash"`, "letters, digits"},
		},
		{
			name: "unknown SASL mechanism",
			mutate: func(c *kafkaevents.Config) {
				c.SASL = kafkaevents.SASLConfig{Mechanism: "gssapi", Username: "u", Password: "p"}
			},
			want: []string{"SASL.Mechanism", `"gssapi"`, "plain, scram-sha-256, scram-sha-512", "KAFKA_SASL_MECHANISM"},
		},
		{
			name: "SASL mechanism without username",
			mutate: func(c *kafkaevents.Config) {
				c.SASL = kafkaevents.SASLConfig{Mechanism: "plain", Password: "s3cr3t-pa55"}
			},
			want: []string{"SASL.Username is empty", `"plain"`, "want a username", "KAFKA_SASL_USERNAME"},
		},
		{
			name: "SASL mechanism without password",
			mutate: func(c *kafkaevents.Config) {
				c.SASL = kafkaevents.SASLConfig{Mechanism: "scram-sha-256", Username: "u"}
			},
			want: []string{"SASL.Password is empty", `"scram-sha-256"`, "want a password", "KAFKA_SASL_PASSWORD"},
		},
		{
			name:   "username without mechanism",
			mutate: func(c *kafkaevents.Config) { c.SASL = kafkaevents.SASLConfig{Username: "u"} },
			want:   []string{"SASL.Mechanism is empty", "plain, scram-sha-256, scram-sha-512"},
		},
		{
			name:   "password without mechanism",
			mutate: func(c *kafkaevents.Config) { c.SASL = kafkaevents.SASLConfig{Password: "s3cr3t-pa55"} },
			want:   []string{"SASL.Mechanism is empty", "plain, scram-sha-256, scram-sha-512"},
		},
		{
			name:   "empty group",
			mutate: func(c *kafkaevents.Config) { c.Consumer.GroupID = "" },
			want:   []string{"Consumer.GroupID is empty", "KAFKA_CONSUMER_GROUP"},
		},
		{
			name:   "heartbeat equal to session timeout",
			mutate: func(c *kafkaevents.Config) { c.Consumer.HeartbeatInterval = c.Consumer.SessionTimeout },
			want:   []string{"Consumer.HeartbeatInterval", "= 30s", "less than Consumer.SessionTimeout (30s)", "KAFKA_HEARTBEAT_INTERVAL"},
		},
		{
			name:   "heartbeat above session timeout",
			mutate: func(c *kafkaevents.Config) { c.Consumer.HeartbeatInterval = time.Minute },
			want:   []string{"Consumer.HeartbeatInterval", "= 1m0s", "less than Consumer.SessionTimeout"},
		},
		{
			name:   "negative session timeout",
			mutate: func(c *kafkaevents.Config) { c.Consumer.SessionTimeout = -time.Second },
			want:   []string{"Consumer.SessionTimeout", "= -1s", "> 0", "KAFKA_SESSION_TIMEOUT"},
		},
		{
			name:   "negative heartbeat interval",
			mutate: func(c *kafkaevents.Config) { c.Consumer.HeartbeatInterval = -time.Second },
			want:   []string{"Consumer.HeartbeatInterval", "= -1s", "> 0"},
		},
		{
			name:   "negative fetch min bytes",
			mutate: func(c *kafkaevents.Config) { c.Consumer.FetchMinBytes = -1 },
			want:   []string{"Consumer.FetchMinBytes", "= -1", "> 0"},
		},
		{
			name:   "negative fetch default bytes",
			mutate: func(c *kafkaevents.Config) { c.Consumer.FetchDefaultBytes = -1 },
			want:   []string{"Consumer.FetchDefaultBytes", "= -1", "> 0"},
		},
		{
			name:   "negative fetch max bytes",
			mutate: func(c *kafkaevents.Config) { c.Consumer.FetchMaxBytes = -1 },
			want:   []string{"Consumer.FetchMaxBytes", "= -1", ">= 0"},
		},
		{
			name:   "max wait below a millisecond",
			mutate: func(c *kafkaevents.Config) { c.Consumer.MaxWaitTime = time.Microsecond },
			want:   []string{"Consumer.MaxWaitTime", "= 1µs", "at least 1ms", "KAFKA_FETCH_MAX_WAIT"},
		},
		{
			name:   "unknown rebalance strategy",
			mutate: func(c *kafkaevents.Config) { c.Consumer.RebalanceStrategy = "random" },
			want:   []string{"Consumer.RebalanceStrategy", `"random"`, "range, roundrobin, sticky, cooperative-sticky", "KAFKA_REBALANCE_STRATEGY"},
		},
		{
			name: "cooperative-sticky before Kafka 2.4",
			mutate: func(c *kafkaevents.Config) {
				c.Consumer.RebalanceStrategy = "cooperative-sticky"
				c.Version = "2.3.0"
			},
			want: []string{"Consumer.RebalanceStrategy", `"cooperative-sticky"`, "needs Version 2.4.0 or newer", `"2.3.0"`},
		},
		{
			name:   "negative shutdown timeout",
			mutate: func(c *kafkaevents.Config) { c.Consumer.ShutdownTimeout = -time.Second },
			want:   []string{"Consumer.ShutdownTimeout", "= -1s", ">= 0", "KAFKA_SHUTDOWN_TIMEOUT"},
		},
		{
			name:   "unknown acks",
			mutate: func(c *kafkaevents.Config) { c.Producer.RequiredAcks = "some" },
			want:   []string{"Producer.RequiredAcks", `"some"`, "all, leader, none", "KAFKA_PRODUCER_ACKS"},
		},
		{
			name:   "unknown compression",
			mutate: func(c *kafkaevents.Config) { c.Producer.Compression = "brotli" },
			want:   []string{"Producer.Compression", `"brotli"`, "none, gzip, snappy, lz4, zstd", "KAFKA_PRODUCER_COMPRESSION"},
		},
		{
			name: "zstd before Kafka 2.1",
			mutate: func(c *kafkaevents.Config) {
				c.Producer.Compression = "zstd"
				c.Version = "2.0.0"
			},
			want: []string{"Producer.Compression", `"zstd"`, "needs Version 2.1.0 or newer", `"2.0.0"`},
		},
		{
			name:   "no request in flight",
			mutate: func(c *kafkaevents.Config) { c.Producer.MaxInFlightRequests = -1 },
			want:   []string{"Producer.MaxInFlightRequests", "= -1", ">= 1"},
		},
		{
			name:   "negative linger other than NoLinger",
			mutate: func(c *kafkaevents.Config) { c.Producer.Linger = -5 * time.Millisecond },
			want:   []string{"Producer.Linger", "KAFKA_PRODUCER_LINGER", "= -5ms", "from 0 to 1s, or NoLinger"},
		},
		{
			name:   "linger over a second",
			mutate: func(c *kafkaevents.Config) { c.Producer.Linger = 2 * time.Second },
			want:   []string{"Producer.Linger", "= 2s"},
		},
		{
			name: "idempotent with leader acks",
			mutate: func(c *kafkaevents.Config) {
				c.Producer = kafkaevents.ProducerConfig{
					Idempotent: kafkaevents.Bool(true), MaxInFlightRequests: 1, RequiredAcks: "leader", Compression: "none",
				}
			},
			want: []string{"Producer.RequiredAcks", `"leader"`, `want "all" when Producer.Idempotent is true`},
		},
		{
			name: "idempotent with five requests in flight",
			mutate: func(c *kafkaevents.Config) {
				c.Producer = kafkaevents.ProducerConfig{
					Idempotent: kafkaevents.Bool(true), MaxInFlightRequests: 5, RequiredAcks: "all", Compression: "none",
				}
			},
			want: []string{"Producer.MaxInFlightRequests", "= 5", "want 1 when Producer.Idempotent is true"},
		},
		{
			name:   "negative attempts",
			mutate: func(c *kafkaevents.Config) { c.Retry.Attempts = -1 },
			want:   []string{"Retry.Attempts", "= -1", ">= 0", "KAFKA_RETRY_ATTEMPTS"},
		},
		{
			name:   "zero base delay",
			mutate: func(c *kafkaevents.Config) { c.Retry.BaseDelay = 0 },
			want:   []string{"Retry.BaseDelay", "= 0s", "> 0", "KAFKA_RETRY_BASE_DELAY"},
		},
		{
			name:   "negative base delay",
			mutate: func(c *kafkaevents.Config) { c.Retry.BaseDelay = -time.Second },
			want:   []string{"Retry.BaseDelay", "= -1s", "> 0"},
		},
		{
			name:   "base delay above max delay",
			mutate: func(c *kafkaevents.Config) { c.Retry.BaseDelay = time.Minute },
			want:   []string{"Retry.BaseDelay", "= 1m0s", "at most Retry.MaxDelay (30s)"},
		},
		{
			name:   "unknown backoff",
			mutate: func(c *kafkaevents.Config) { c.Retry.Backoff = "fibonacci" },
			want:   []string{"Retry.Backoff", `"fibonacci"`, "exponential, linear", "KAFKA_RETRY_BACKOFF"},
		},
		{
			name:   "negative jitter",
			mutate: func(c *kafkaevents.Config) { c.Retry.Jitter = -0.1 },
			want:   []string{"Retry.Jitter", "= -0.1", "from 0 to 1", "KAFKA_RETRY_JITTER"},
		},
		{
			name:   "jitter above one",
			mutate: func(c *kafkaevents.Config) { c.Retry.Jitter = 1.5 },
			want:   []string{"Retry.Jitter", "= 1.5", "from 0 to 1"},
		},
		{
			name:   "jitter not a number",
			mutate: func(c *kafkaevents.Config) { c.Retry.Jitter = math.NaN() },
			want:   []string{"Retry.Jitter", "= NaN", "from 0 to 1"},
		},
		{
			name:   "unknown topic mode",
			mutate: func(c *kafkaevents.Config) { c.Retry.TopicMode = "many" },
			want:   []string{"Retry.TopicMode", `"many"`, "lanes, single", "KAFKA_RETRY_TOPIC_MODE"},
		},
		{
			name:   "negative retry partitions",
			mutate: func(c *kafkaevents.Config) { c.Retry.Partitions = -3 },
			want:   []string{"Retry.Partitions", "= -3", ">= 0", "KAFKA_RETRY_PARTITIONS"},
		},
		{
			name:   "negative retry replication factor",
			mutate: func(c *kafkaevents.Config) { c.Retry.ReplicationFactor = -1 },
			want:   []string{"Retry.ReplicationFactor", "= -1", ">= 0", "KAFKA_RETRY_REPLICATION_FACTOR"},
		},
		{
			name:   "retry retention equal to max delay",
			mutate: func(c *kafkaevents.Config) { c.Retry.Retention = c.Retry.MaxDelay },
			want:   []string{"Retry.Retention", "= 30s", "more than Retry.MaxDelay (30s)", "KAFKA_RETRY_RETENTION"},
		},
		{
			name:   "negative retry segment",
			mutate: func(c *kafkaevents.Config) { c.Retry.Segment = -time.Hour },
			want:   []string{"Retry.Segment", "= -1h0m0s", "> 0", "KAFKA_RETRY_SEGMENT"},
		},
		{
			name:   "negative DLQ partitions",
			mutate: func(c *kafkaevents.Config) { c.DLQ.Partitions = -1 },
			want:   []string{"DLQ.Partitions", "= -1", ">= 0", "KAFKA_DLQ_PARTITIONS"},
		},
		{
			name:   "negative DLQ replication factor",
			mutate: func(c *kafkaevents.Config) { c.DLQ.ReplicationFactor = -2 },
			want:   []string{"DLQ.ReplicationFactor", "= -2", ">= 0", "KAFKA_DLQ_REPLICATION_FACTOR"},
		},
		{
			name:   "negative DLQ retention",
			mutate: func(c *kafkaevents.Config) { c.DLQ.Retention = -time.Hour },
			want:   []string{"DLQ.Retention", "= -1h0m0s", "> 0", "KAFKA_DLQ_RETENTION"},
		},
		{
			name:   "negative DLQ max reprocess",
			mutate: func(c *kafkaevents.Config) { c.DLQ.MaxReprocess = -1 },
			want:   []string{"DLQ.MaxReprocess", "= -1", ">= 0", "KAFKA_DLQ_MAX_REPROCESS"},
		},
		{
			name:   "monitoring prefix without slash",
			mutate: func(c *kafkaevents.Config) { c.Monitoring.Prefix = "kafka" },
			want:   []string{"Monitoring.Prefix", `"kafka"`, "starts with '/'"},
		},
		{
			name:   "monitoring prefix with trailing slash",
			mutate: func(c *kafkaevents.Config) { c.Monitoring.Prefix = "/kafka/" },
			want:   []string{"Monitoring.Prefix", `"/kafka/"`, "does not end with one"},
		},
		{
			name: "missing CA file",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: missing}
			},
			want: []string{"TLS.CAFile", fmt.Sprintf("%q", missing), "readable PEM file of CA certificates", "no such file", "KAFKA_SSL_CA_FILE"},
		},
		{
			name: "CA file that is not PEM",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: notPEM}
			},
			want: []string{"TLS.CAFile", fmt.Sprintf("%q", notPEM), "no PEM certificate found"},
		},
		{
			name: "CA file checked when SASL turns TLS on",
			mutate: func(c *kafkaevents.Config) {
				c.SASL = kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: "p"}
				c.TLS = kafkaevents.TLSConfig{CAFile: missing}
			},
			want: []string{"TLS.CAFile", "no such file"},
		},
		{
			name: "cert without key",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CertFile: pki.ClientCertFile}
			},
			want: []string{"TLS.KeyFile is empty but TLS.CertFile is set", "both or neither", "KAFKA_SSL_KEY_FILE"},
		},
		{
			name: "key without cert",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), KeyFile: pki.ClientKeyFile}
			},
			want: []string{"TLS.CertFile is empty but TLS.KeyFile is set", "both or neither", "KAFKA_SSL_CERT_FILE"},
		},
		{
			name: "key that does not match the cert",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{
					Enabled: kafkaevents.Bool(true), CertFile: pki.ClientCertFile, KeyFile: pki.ServerKeyFile,
				}
			},
			want: []string{"TLS.CertFile", fmt.Sprintf("%q", pki.ClientCertFile), "matching private key", "does not match"},
		},
		{
			name: "unparsable cert",
			mutate: func(c *kafkaevents.Config) {
				c.TLS = kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CertFile: notPEM, KeyFile: pki.ClientKeyFile}
			},
			want: []string{"TLS.CertFile", fmt.Sprintf("%q", notPEM), "readable PEM certificate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := cfgValid()
			tt.mutate(&c)
			err := c.Validate()
			lines := cfgProblems(t, err)
			require.Len(t, lines, 1, "want exactly one problem, got:\n%v", err)
			for _, w := range tt.want {
				assert.Contains(t, lines[0], w)
			}
			assert.NotContains(t, err.Error(), "s3cr3t-pa55")
		})
	}
}

func TestConfigValidateSkipsTLSFilesWhenTLSIsOff(t *testing.T) {
	t.Parallel()

	c := cfgValid()
	c.TLS = kafkaevents.TLSConfig{CAFile: "/nonexistent/ca.pem", CertFile: "/nonexistent/cert.pem"}
	require.NoError(t, c.Validate(), "TLS is off: nil Enabled and no SASL")

	c.SASL = kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: "p"}
	c.TLS.Enabled = kafkaevents.Bool(false)
	require.NoError(t, c.Validate(), "TLS is off: explicit false wins over SASL")
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()

	c := kafkaevents.Config{
		Brokers: []string{"nohost"},
		SASL:    kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: "s3cr3t-pa55"},
		TLS:     kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
		Retry:   kafkaevents.RetryConfig{Backoff: "fib", Attempts: -1, Jitter: 2},
		Monitoring: kafkaevents.MonitoringConfig{
			AdminToken: "t0k3n-s3cr3t",
			Prefix:     "x",
		},
	}
	c.SetDefaults()
	err := c.Validate()
	lines := cfgProblems(t, err)
	assert.Len(t, lines, 5, "got:\n%v", err)
	for _, field := range []string{"Brokers[0]", "Retry.Backoff", "Retry.Attempts", "Retry.Jitter", "Monitoring.Prefix"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.True(t, strings.HasPrefix(err.Error(), kafkaevents.ErrInvalidConfig.Error()+"\n"))
	assert.NotContains(t, err.Error(), "s3cr3t-pa55")
	assert.NotContains(t, err.Error(), "t0k3n-s3cr3t")
}

func TestConfigValidateUnsetConfig(t *testing.T) {
	t.Parallel()

	// Without SetDefaults every required number is zero; Validate says so
	// rather than passing.
	err := kafkaevents.Config{Brokers: []string{"k:9092"}}.Validate()
	lines := cfgProblems(t, err)
	assert.Greater(t, len(lines), 5)
	assert.Contains(t, err.Error(), "Retry.BaseDelay")
}

// cfgSecretsConfig returns a config whose secrets must never be printed.
func cfgSecretsConfig() kafkaevents.Config {
	return kafkaevents.Config{
		ClientID: "orders",
		Brokers:  []string{"kafka-1:9092"},
		TLS:      kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: "/etc/kafka/ca.pem"},
		SASL: kafkaevents.SASLConfig{
			Mechanism: "scram-sha-512",
			Username:  "orders-user",
			Password:  "s3cr3t-pa55",
		},
		Retry:      kafkaevents.RetryConfig{BaseDelay: 1500 * time.Millisecond},
		Monitoring: kafkaevents.MonitoringConfig{AdminToken: "t0k3n-s3cr3t"},
	}
}

func TestConfigRedactsSecretsInFmt(t *testing.T) {
	t.Parallel()

	c := cfgSecretsConfig()
	wrapper := struct{ Cfg kafkaevents.Config }{Cfg: c}
	tests := []struct {
		name string
		got  string
		// shown must appear: proof that the config itself was printed.
		shown []string
	}{
		{name: "Sprint", got: fmt.Sprint(c), shown: []string{"orders-user", "Password:[redacted]", "AdminToken:[redacted]", "BaseDelay:1.5s", "Enabled:true"}},
		{name: "Println", got: fmt.Sprintln(c), shown: []string{"orders-user", "[redacted]"}},
		{name: "%v", got: fmt.Sprintf("%v", c), shown: []string{"kafka-1:9092", "[redacted]"}},
		{name: "%+v", got: fmt.Sprintf("%+v", c), shown: []string{"ClientID:orders", "Password:[redacted]"}},
		{name: "%#v", got: fmt.Sprintf("%#v", c), shown: []string{
			`kafkaevents.Config{ClientID:"orders"`, `Password:"[redacted]"`, `AdminToken:"[redacted]"`, "kafkaevents.Bool(true)",
		}},
		{name: "%s", got: fmt.Sprintf("%s", c), shown: []string{"[redacted]"}},
		{name: "%q", got: fmt.Sprintf("%q", c), shown: []string{"[redacted]"}},
		{name: "%d", got: fmt.Sprintf("%d", c), shown: []string{"[redacted]"}},
		{name: "%x", got: fmt.Sprintf("%x", c), shown: []string{fmt.Sprintf("%x", "[redacted]")}},
		{name: "pointer", got: fmt.Sprintf("%+v", &c), shown: []string{"orders-user", "[redacted]"}},
		{name: "String", got: c.String(), shown: []string{"[redacted]"}},
		{name: "GoString", got: c.GoString(), shown: []string{`"[redacted]"`}},
		{name: "inside another struct", got: fmt.Sprintf("%+v", wrapper), shown: []string{"orders-user", "[redacted]"}},
		{name: "inside another struct %#v", got: fmt.Sprintf("%#v", wrapper), shown: []string{"orders-user", `"[redacted]"`}},
		{name: "SASL %v", got: fmt.Sprintf("%v", c.SASL), shown: []string{"orders-user", "Password:[redacted]"}},
		{name: "SASL %+v", got: fmt.Sprintf("%+v", c.SASL), shown: []string{"Username:orders-user", "Password:[redacted]"}},
		{name: "SASL %#v", got: fmt.Sprintf("%#v", c.SASL), shown: []string{"kafkaevents.SASLConfig{", `Password:"[redacted]"`}},
		{name: "SASL String", got: c.SASL.String(), shown: []string{"[redacted]"}},
		{name: "SASL GoString", got: c.SASL.GoString(), shown: []string{"[redacted]"}},
		{name: "Monitoring %v", got: fmt.Sprintf("%v", c.Monitoring), shown: []string{"AdminToken:[redacted]"}},
		{name: "Monitoring %+v", got: fmt.Sprintf("%+v", c.Monitoring), shown: []string{"AdminToken:[redacted]"}},
		{name: "Monitoring %#v", got: fmt.Sprintf("%#v", c.Monitoring), shown: []string{"kafkaevents.MonitoringConfig{", `AdminToken:"[redacted]"`}},
		{name: "Monitoring String", got: c.Monitoring.String(), shown: []string{"[redacted]"}},
		{name: "Monitoring GoString", got: c.Monitoring.GoString(), shown: []string{"[redacted]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, secret := range []string{"s3cr3t-pa55", "t0k3n-s3cr3t"} {
				assert.NotContains(t, tt.got, secret)
				assert.NotContains(t, tt.got, fmt.Sprintf("%x", secret))
			}
			for _, s := range tt.shown {
				assert.Contains(t, tt.got, s)
			}
		})
	}
}

func TestConfigRedactsOnlySetSecrets(t *testing.T) {
	t.Parallel()

	c := kafkaevents.Config{SASL: kafkaevents.SASLConfig{Mechanism: "plain", Username: "u"}}
	assert.NotContains(t, c.String(), "[redacted]", "an empty secret stays empty")
	assert.Contains(t, c.String(), "Password:}")
	assert.Contains(t, c.GoString(), `Password:""`)
	assert.Contains(t, c.String(), "Enabled:<nil>")
	assert.Contains(t, c.GoString(), "Enabled:nil")
}

func TestConfigRedactsSecretsInSlog(t *testing.T) {
	t.Parallel()

	c := cfgSecretsConfig()
	tests := []struct {
		name    string
		handler func(*bytes.Buffer) slog.Handler
	}{
		{name: "json", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{name: "text", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := slog.New(tt.handler(&buf))
			log.Info("starting", "config", c, "sasl", c.SASL, "monitoring", c.Monitoring)
			log.Info("starting", slog.Any("config", &c))
			out := buf.String()
			assert.NotContains(t, out, "s3cr3t-pa55")
			assert.NotContains(t, out, "t0k3n-s3cr3t")
			assert.Contains(t, out, "orders-user")
			assert.Contains(t, out, "[redacted]")
		})
	}
}

func TestConfigLogValueKeys(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "config", cfgSecretsConfig())

	var rec struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	cfg := rec.Config
	assert.Equal(t, "orders", cfg["client_id"])
	assert.Equal(t, []any{"kafka-1:9092"}, cfg["brokers"])
	tls, ok := cfg["tls"].(map[string]any)
	require.True(t, ok, "tls is a group: %v", cfg)
	assert.Equal(t, true, tls["enabled"])
	assert.Equal(t, "/etc/kafka/ca.pem", tls["ca_file"])
	assert.Equal(t, false, tls["insecure_skip_verify"])
	sasl, ok := cfg["sasl"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "[redacted]", sasl["password"])
	assert.Equal(t, "orders-user", sasl["username"])
	retry, ok := cfg["retry"].(map[string]any)
	require.True(t, ok)
	assert.InDelta(t, float64(1500*time.Millisecond), retry["base_delay"], 0)
	assert.Nil(t, retry["enabled"])
	producer, ok := cfg["producer"].(map[string]any)
	require.True(t, ok)
	assert.Contains(t, producer, "max_in_flight_requests")
	monitoring, ok := cfg["monitoring"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "[redacted]", monitoring["admin_token"])
}
