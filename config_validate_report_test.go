package kafkaevents_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

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
