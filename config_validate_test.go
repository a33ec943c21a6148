package kafkaevents_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

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
			// What an unknown mechanism needs is unknown: no lines about
			// the credentials.
			name:   "unknown SASL mechanism without credentials",
			mutate: func(c *kafkaevents.Config) { c.SASL = kafkaevents.SASLConfig{Mechanism: "foo"} },
			want:   []string{"SASL.Mechanism", `"foo"`, "plain, scram-sha-256, scram-sha-512", "KAFKA_SASL_MECHANISM"},
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
				c.Producer.ExactlyOnceHandoffs = nil // unset: off below 2.5.0
			},
			want: []string{"Consumer.RebalanceStrategy", `"cooperative-sticky"`, "needs Version 2.4.0 or newer", `"2.3.0"`},
		},
		{
			name: "exactly-once hand-offs before Kafka 2.5",
			mutate: func(c *kafkaevents.Config) {
				c.Producer.ExactlyOnceHandoffs = kafkaevents.Bool(true)
				c.Version = "2.4.0"
			},
			want: []string{"Producer.ExactlyOnceHandoffs", "needs Version 2.5.0 or newer", `"2.4.0"`, "KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS"},
		},
		{
			name:   "negative shutdown timeout",
			mutate: func(c *kafkaevents.Config) { c.Consumer.ShutdownTimeout = -time.Second },
			want:   []string{"Consumer.ShutdownTimeout", "= -1s", ">= 0", "KAFKA_SHUTDOWN_TIMEOUT"},
		},
		{
			name:   "commit interval too short",
			mutate: func(c *kafkaevents.Config) { c.Consumer.CommitInterval = time.Millisecond },
			want:   []string{"Consumer.CommitInterval", "= 1ms", "at least 10ms", "KAFKA_CONSUMER_COMMIT_INTERVAL"},
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
				c.Producer.ExactlyOnceHandoffs = nil // unset: off below 2.5.0
			},
			want: []string{"Producer.Compression", `"zstd"`, "needs Version 2.1.0 or newer", `"2.0.0"`},
		},
		{
			// What zstd needs of a version that is out of range is moot.
			name: "zstd with a version below the supported range",
			mutate: func(c *kafkaevents.Config) {
				c.Producer.Compression = "zstd"
				c.Version = "0.11.0.2"
			},
			want: []string{"Version", `"0.11.0.2"`, "want a version from 1.0.0"},
		},
		{
			name: "unknown acks with idempotence",
			mutate: func(c *kafkaevents.Config) {
				c.Producer = kafkaevents.ProducerConfig{
					Idempotent: kafkaevents.Bool(true), MaxInFlightRequests: 1, RequiredAcks: "some", Compression: "none",
				}
			},
			want: []string{"Producer.RequiredAcks", `"some"`, "all, leader, none"},
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
			name:   "trace URL without placeholder",
			mutate: func(c *kafkaevents.Config) { c.Monitoring.TraceURL = "https://jaeger.example/trace/" },
			want:   []string{"Monitoring.TraceURL", "{traceId}", "KAFKA_MONITORING_TRACE_URL"},
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
