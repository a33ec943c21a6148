package kafkaevents_test

import (
	"errors"
	"log/slog"
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
		ClientID:       "kafkaevents",
		ServiceName:    "kafkaevents",
		Version:        "2.8.0",
		LogLevel:       "info",
		StartupTimeout: 20 * time.Second,
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
			CommitInterval:    100 * time.Millisecond,
			Concurrency:       1,
		},
		Producer: kafkaevents.ProducerConfig{
			Idempotent:          kafkaevents.Bool(false),
			MaxInFlightRequests: 5,
			RequiredAcks:        "all",
			Compression:         "none",
			Linger:              5 * time.Millisecond,
			ExactlyOnceHandoffs: kafkaevents.Bool(true),
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
			DeadLetteredKey:   "hold",
			KeyOrderLimit:     10_000,
		},
		DLQ: kafkaevents.DLQConfig{
			Enabled:           kafkaevents.Bool(true),
			Partitions:        3,
			ReplicationFactor: 1,
			Retention:         14 * 24 * time.Hour,
			MaxReprocess:      5,
		},
		Monitoring: kafkaevents.MonitoringConfig{Enabled: kafkaevents.Bool(true), Prefix: "/kafka", UI: kafkaevents.Bool(true)},
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
	assert.True(t, unset.MonitoringUIEnabled())
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
	assert.False(t, flipped.MonitoringUIEnabled(), "no console without the endpoints")
	noUI := kafkaevents.Config{Monitoring: kafkaevents.MonitoringConfig{UI: kafkaevents.Bool(false)}}
	assert.True(t, noUI.MonitoringEnabled())
	assert.False(t, noUI.MonitoringUIEnabled())
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
