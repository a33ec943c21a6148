package kafkaevents

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// ErrInvalidConfig is wrapped by every error that [Config.Validate],
// [Config.FromEnv], [Config.FromLookup] and [Config.Sarama] return for a bad
// configuration, so callers can test for it with errors.Is.
var ErrInvalidConfig = errors.New("kafkaevents: invalid config")

// Config configures a Stack.
//
// The zero value of every field means "unset": [Config.FromEnv] fills unset
// fields from KAFKA_* environment variables, and [Config.SetDefaults] fills
// whatever is still unset with the defaults documented on each field. Call
// [Config.Validate] after SetDefaults; [Config.Sarama] does both on a copy.
//
// Printing a Config with fmt or logging it with log/slog never shows
// SASL.Password or Monitoring.AdminToken: see [Config.String].
type Config struct {
	// ClientID is the client.id the brokers see. Optional. Default:
	// "kafkaevents". Environment: KAFKA_CLIENT_ID.
	ClientID string
	// Brokers lists the bootstrap brokers as host:port. Required.
	// Environment: KAFKA_BROKERS, comma-separated.
	Brokers []string
	// ServiceName prefixes the topics the library creates ("{service}.retry…"
	// and "{service}.dlq"), so it may only hold letters, digits, '.', '_' and
	// '-'. Optional. Default: ClientID.
	ServiceName string
	// Version is the Kafka protocol version sarama speaks, such as "2.8.0" or
	// "3.7.0". It must parse with sarama.ParseKafkaVersion and lie between
	// 1.0.0 and the newest version sarama knows; cooperative-sticky
	// rebalancing needs 2.4.0 or newer and zstd compression 2.1.0 or newer.
	// Optional. Default: "2.8.0". Environment: KAFKA_VERSION.
	Version string
	// LogLevel is one of debug, info, warn or error (case-insensitive); see
	// [Config.SlogLevel]. Optional. Default: "info". Environment:
	// KAFKA_LOG_LEVEL.
	LogLevel string

	// TLS configures encryption of broker connections.
	TLS TLSConfig
	// SASL configures authentication to the brokers.
	SASL SASLConfig
	// Consumer configures the consumer group.
	Consumer ConsumerConfig
	// Producer configures the producers that publish retries and DLQ records.
	Producer ProducerConfig
	// Subscriptions lists the topics to consume.
	Subscriptions SubscriptionConfig
	// Retry configures delayed retries.
	Retry RetryConfig
	// DLQ configures the dead-letter queue.
	DLQ DLQConfig
	// Monitoring configures the monitoring and admin endpoints.
	Monitoring MonitoringConfig
}

// TLSConfig configures TLS for broker connections. Whether TLS is used at all
// is decided by [Config.TLSEnabled].
type TLSConfig struct {
	// Enabled turns TLS on or off. Optional. Nil means automatic: TLS is on
	// when SASL.Mechanism is set and off otherwise. An explicit false always
	// wins, even with SASL. Environment: KAFKA_SSL_ENABLED.
	Enabled *bool
	// CAFile is a PEM file of CA certificates that verify the brokers.
	// Optional. Default: the system roots. Environment: KAFKA_SSL_CA_FILE.
	CAFile string
	// CertFile is a PEM client certificate for mutual TLS; it needs KeyFile.
	// Optional. Environment: KAFKA_SSL_CERT_FILE.
	CertFile string
	// KeyFile is the PEM private key of CertFile; it needs CertFile.
	// Optional. Environment: KAFKA_SSL_KEY_FILE.
	KeyFile string
	// InsecureSkipVerify accepts any broker certificate. Use it only in
	// development. Optional. Default: false. Environment:
	// KAFKA_SSL_INSECURE_SKIP_VERIFY.
	InsecureSkipVerify bool
	// ServerName overrides the name checked against the broker certificates.
	// Optional. Default: the host of the broker address.
	ServerName string
}

// SASLConfig configures SASL authentication. Its String, GoString, Format and
// LogValue methods never show Password.
type SASLConfig struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512"
	// (case-insensitive; SetDefaults lowers it). Optional. Empty means no
	// SASL. Setting it also turns TLS on unless TLS.Enabled is false.
	// Environment: KAFKA_SASL_MECHANISM.
	Mechanism string
	// Username is required when Mechanism is set. Environment:
	// KAFKA_SASL_USERNAME.
	Username string
	// Password is required when Mechanism is set. It is never printed.
	// Environment: KAFKA_SASL_PASSWORD.
	Password string
}

// ConsumerConfig configures the consumer group.
type ConsumerConfig struct {
	// GroupID is the consumer group. Optional. Default: ClientID + "-group".
	// Environment: KAFKA_CONSUMER_GROUP.
	GroupID string
	// SessionTimeout is how long the group coordinator waits for a heartbeat
	// before it evicts a member. Optional. Default: 30s. Environment:
	// KAFKA_SESSION_TIMEOUT.
	SessionTimeout time.Duration
	// HeartbeatInterval is the time between heartbeats; it must be shorter
	// than SessionTimeout. Optional. Default: 3s. Environment:
	// KAFKA_HEARTBEAT_INTERVAL.
	HeartbeatInterval time.Duration
	// FetchMinBytes is the least data a fetch waits for (sarama
	// Consumer.Fetch.Min). The retry consumer waits for at least 64 KiB,
	// for at most a quarter of the shortest retry delay (see MaxWaitTime).
	// Optional. Default: 1.
	FetchMinBytes int32
	// FetchDefaultBytes is how much a fetch asks for per partition (sarama
	// Consumer.Fetch.Default). Optional. Default: 1 MiB.
	FetchDefaultBytes int32
	// FetchMaxBytes caps a fetch per partition (sarama Consumer.Fetch.Max);
	// a record larger than this cannot be consumed. Optional. Default: 0,
	// which means no limit.
	FetchMaxBytes int32
	// MaxWaitTime is how long the broker may hold a fetch waiting for
	// FetchMinBytes; Kafka counts it in whole milliseconds. The retry
	// consumer uses a quarter of the shortest retry delay when that is
	// shorter (and at least 1ms), so its records are read long before they
	// are due. Optional. Default: 250ms. Environment: KAFKA_FETCH_MAX_WAIT.
	MaxWaitTime time.Duration
	// RebalanceStrategy is range, roundrobin, sticky or cooperative-sticky
	// (case-insensitive). Cooperative-sticky needs Version 2.4.0 or newer,
	// and its sarama strategy keeps state, so call [Config.Sarama] once per
	// consumer group. Optional. Default: "range". Environment:
	// KAFKA_REBALANCE_STRATEGY.
	RebalanceStrategy string
	// RebalanceTimeout is how long the coordinator waits for every member to
	// rejoin during a rebalance; a member that crashed keeps the rebalance
	// open this long. The client's read timeout is raised to at least
	// RebalanceTimeout + 5s, so that a join the coordinator holds is not
	// abandoned. Optional. Default: 60s. Environment:
	// KAFKA_REBALANCE_TIMEOUT.
	RebalanceTimeout time.Duration
	// ShutdownTimeout is how long in-flight handlers may keep running after
	// a stop. Optional. Default: 30s. Environment: KAFKA_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
}

// ProducerConfig configures the producers.
type ProducerConfig struct {
	// Idempotent turns on the idempotent producer, which needs
	// RequiredAcks "all" and MaxInFlightRequests 1. Optional. Default:
	// false. Environment: KAFKA_PRODUCER_IDEMPOTENT.
	Idempotent *bool
	// MaxInFlightRequests is how many requests may be outstanding on one
	// broker connection (sarama Net.MaxOpenRequests, shared by consumers
	// and producers). Optional. Default: 5, or 1 when Idempotent.
	MaxInFlightRequests int
	// RequiredAcks is "all" (or "-1"), "leader" (or "1") or "none" (or "0");
	// SetDefaults turns the numbers into names. Optional. Default: "all".
	// Environment: KAFKA_PRODUCER_ACKS.
	RequiredAcks string
	// Compression is none, gzip, snappy, lz4 or zstd (case-insensitive);
	// zstd needs Version 2.1.0 or newer. Optional. Default: "none".
	// Environment: KAFKA_PRODUCER_COMPRESSION.
	Compression string
	// Linger is how long the producer lets records gather before it sends
	// a produce request (sarama Producer.Flush.Frequency; the Java client's
	// linger.ms, 5ms by default since Kafka 4.0). Records sent one at a
	// time from many goroutines, such as the retry records of failing
	// messages, then share requests instead of paying one each. The retry
	// and DLQ hand-offs of messages from the stack's subscriber do not wait
	// for it (their offsets are held instead); Producer.Send waits up to
	// Linger longer for its acknowledgement. The retry records handed off
	// linger longer, on a producer of their own: a quarter of the shortest
	// retry delay, at most 25ms, never less than Linger. At most 1s. Optional.
	// Default: 5ms, as the Java client; NoLinger sends every record at once.
	// Environment: KAFKA_PRODUCER_LINGER (0 for NoLinger).
	Linger time.Duration
}

// NoLinger is the Producer.Linger that sends every record at once.
const NoLinger time.Duration = -1

// maxLinger bounds Producer.Linger: a hand-off that has to wait for its
// record (see the README) holds its partition for up to that long.
const maxLinger = time.Second

// SubscriptionConfig lists what to consume.
type SubscriptionConfig struct {
	// Topics to consume. Optional. Environment: KAFKA_TOPICS,
	// comma-separated.
	Topics []string
	// FromBeginning makes a group without committed offsets start at the
	// oldest record instead of the newest. Optional. Default: false.
	// Environment: KAFKA_FROM_BEGINNING. The retry consumer group always
	// starts at the oldest record: its topics hold only retries still owed.
	FromBeginning *bool
}

// RetryConfig configures delayed retries through retry topics.
type RetryConfig struct {
	// Enabled turns delayed retries on or off. Optional. Default: true.
	// Environment: KAFKA_RETRY_ENABLED.
	Enabled *bool
	// Attempts is how many times a failed record is retried before it goes
	// to the DLQ. Negative is an error and 0 means the default: set Enabled
	// to false to turn retries off. Optional. Default: 3. Environment:
	// KAFKA_RETRY_ATTEMPTS.
	Attempts int
	// BaseDelay is the delay before the first retry; it must be positive
	// and no longer than MaxDelay. Optional. Default: 1s. Environment:
	// KAFKA_RETRY_BASE_DELAY.
	BaseDelay time.Duration
	// MaxDelay caps the delay between retries. Optional. Default: 30s.
	// Environment: KAFKA_RETRY_MAX_DELAY.
	MaxDelay time.Duration
	// Backoff is "exponential" (the delay doubles per attempt) or "linear"
	// (it grows by BaseDelay per attempt), case-insensitive. Optional.
	// Default: "exponential". Environment: KAFKA_RETRY_BACKOFF.
	Backoff string
	// Jitter is the fraction in [0, 1] by which a delay is randomly varied.
	// Optional. Default: 0. Environment: KAFKA_RETRY_JITTER.
	Jitter float64
	// TopicMode is "lanes" (one retry topic per distinct delay, so a long
	// delay never holds up a short one) or "single" (one retry topic, where
	// a record waits behind the ones before it). Optional. Default: "lanes".
	// Environment: KAFKA_RETRY_TOPIC_MODE.
	TopicMode string
	// Partitions of each retry topic created. Negative is an error.
	// Optional. Default: 3. Environment: KAFKA_RETRY_PARTITIONS.
	Partitions int32
	// ReplicationFactor of each retry topic created. Negative is an error.
	// Optional. Default: 1. Environment: KAFKA_RETRY_REPLICATION_FACTOR.
	ReplicationFactor int16
	// Retention is the retention.ms of the retry topics; it must exceed
	// MaxDelay. Optional. Default: 7 days. Environment:
	// KAFKA_RETRY_RETENTION.
	Retention time.Duration
	// Segment is the segment.ms of the retry topics. Optional. Default: 1h.
	// Environment: KAFKA_RETRY_SEGMENT.
	Segment time.Duration
}

// DLQConfig configures the dead-letter queue.
type DLQConfig struct {
	// Enabled turns the DLQ on or off. Optional. Default: true.
	// Environment: KAFKA_DLQ_ENABLED.
	Enabled *bool
	// Partitions of the DLQ topic created. Negative is an error. Optional.
	// Default: 3. Environment: KAFKA_DLQ_PARTITIONS.
	Partitions int32
	// ReplicationFactor of the DLQ topic created. Negative is an error.
	// Optional. Default: 1. Environment: KAFKA_DLQ_REPLICATION_FACTOR.
	ReplicationFactor int16
	// Retention is the retention.ms of the DLQ topic. Optional. Default:
	// 14 days. Environment: KAFKA_DLQ_RETENTION.
	Retention time.Duration
	// MaxReprocess is how many times a record may be reprocessed from the
	// DLQ before it is parked. Negative is an error. Optional. Default: 5.
	// Environment: KAFKA_DLQ_MAX_REPROCESS.
	MaxReprocess int
}

// MonitoringConfig configures the monitoring endpoints. Its String,
// GoString, Format and LogValue methods never show AdminToken.
type MonitoringConfig struct {
	// Enabled turns the endpoints on or off. Optional. Default: true.
	// Environment: KAFKA_MONITORING_ENABLED.
	Enabled *bool
	// AdminToken is the bearer token the admin endpoints require. It is
	// never printed. Optional. Empty means the admin endpoints refuse every
	// request with 403. Environment: KAFKA_ADMIN_TOKEN.
	AdminToken string
	// Prefix is the path the endpoints are mounted under; it must start
	// with '/' and not end with one. Optional. Default: "/kafka".
	Prefix string
}

// Defaults applied by SetDefaults.
const (
	defaultClientID          = "kafkaevents"
	defaultVersion           = "2.8.0"
	defaultLogLevel          = "info"
	defaultSessionTimeout    = 30 * time.Second
	defaultHeartbeatInterval = 3 * time.Second
	defaultFetchMinBytes     = 1
	defaultFetchDefaultBytes = 1 << 20
	defaultMaxWaitTime       = 250 * time.Millisecond
	defaultRebalanceStrategy = "range"
	defaultRebalanceTimeout  = 60 * time.Second
	defaultShutdownTimeout   = 30 * time.Second
	defaultMaxInFlight       = 5
	defaultLinger            = 5 * time.Millisecond
	defaultRequiredAcks      = "all"
	defaultCompression       = "none"
	defaultRetryAttempts     = 3
	defaultRetryBaseDelay    = time.Second
	defaultRetryMaxDelay     = 30 * time.Second
	defaultRetryBackoff      = "exponential"
	defaultRetryTopicMode    = "lanes"
	defaultRetryPartitions   = 3
	defaultRetryReplication  = 1
	defaultRetryRetention    = 7 * 24 * time.Hour
	defaultRetrySegment      = time.Hour
	defaultDLQPartitions     = 3
	defaultDLQReplication    = 1
	defaultDLQRetention      = 14 * 24 * time.Hour
	defaultDLQMaxReprocess   = 5
	defaultMonitoringPrefix  = "/kafka"
)

// Allowed values of the string enums, in the order error messages list them.
var (
	allowedLogLevels         = []string{"debug", "info", "warn", "error"}
	allowedSASLMechanisms    = []string{"plain", "scram-sha-256", "scram-sha-512"}
	allowedRebalanceStrategy = []string{"range", "roundrobin", "sticky", "cooperative-sticky"}
	allowedRequiredAcks      = []string{"all", "leader", "none"}
	allowedCompressions      = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	allowedRetryBackoffs     = []string{"exponential", "linear"}
	allowedRetryTopicModes   = []string{"lanes", "single"}
)

// The Kafka versions that Validate requires: overall, and for the features
// that sarama refuses on older brokers.
var (
	minSupportedKafkaVersion  = sarama.V1_0_0_0
	cooperativeStickyMinKafka = sarama.V2_4_0_0
	zstdMinKafka              = sarama.V2_1_0_0
)

// validTopicName matches what Kafka accepts in a topic name.
var validTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// Bool returns a pointer to v, for the tri-state *bool fields of [Config].
func Bool(v bool) *bool { return &v }

// normEnum lowers s and trims spaces around it, as every string enum of
// Config is case-insensitive.
func normEnum(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normAcks maps the numeric spellings of RequiredAcks to their names.
func normAcks(s string) string {
	switch s = normEnum(s); s {
	case "-1":
		return "all"
	case "1":
		return "leader"
	case "0":
		return "none"
	}
	return s
}

// SetDefaults fills every field that is still unset (zero or nil) with its
// documented default and lowers the case-insensitive enum fields. It leaves
// TLS.Enabled alone (see [Config.TLSEnabled]) and keeps invalid values, such
// as negative numbers, for [Config.Validate] to report. Calling it twice has
// the same effect as calling it once.
func (c *Config) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = defaultClientID
	}
	if c.ServiceName == "" {
		c.ServiceName = c.ClientID
	}
	c.Version = strings.TrimSpace(c.Version)
	if c.Version == "" {
		c.Version = defaultVersion
	}
	c.LogLevel = normEnum(c.LogLevel)
	if c.LogLevel == "" {
		c.LogLevel = defaultLogLevel
	}

	c.SASL.Mechanism = normEnum(c.SASL.Mechanism)

	cc := &c.Consumer
	if cc.GroupID == "" {
		cc.GroupID = c.ClientID + "-group"
	}
	setDefault(&cc.SessionTimeout, defaultSessionTimeout)
	setDefault(&cc.HeartbeatInterval, defaultHeartbeatInterval)
	setDefault(&cc.FetchMinBytes, defaultFetchMinBytes)
	setDefault(&cc.FetchDefaultBytes, defaultFetchDefaultBytes)
	setDefault(&cc.MaxWaitTime, defaultMaxWaitTime)
	cc.RebalanceStrategy = normEnum(cc.RebalanceStrategy)
	setDefault(&cc.RebalanceStrategy, defaultRebalanceStrategy)
	setDefault(&cc.RebalanceTimeout, defaultRebalanceTimeout)
	setDefault(&cc.ShutdownTimeout, defaultShutdownTimeout)

	p := &c.Producer
	if p.Idempotent == nil {
		p.Idempotent = Bool(false)
	}
	if p.MaxInFlightRequests == 0 {
		p.MaxInFlightRequests = defaultMaxInFlight
		if *p.Idempotent {
			p.MaxInFlightRequests = 1
		}
	}
	p.RequiredAcks = normAcks(p.RequiredAcks)
	setDefault(&p.RequiredAcks, defaultRequiredAcks)
	setDefault(&p.Linger, defaultLinger)
	p.Compression = normEnum(p.Compression)
	setDefault(&p.Compression, defaultCompression)

	if c.Subscriptions.FromBeginning == nil {
		c.Subscriptions.FromBeginning = Bool(false)
	}

	r := &c.Retry
	if r.Enabled == nil {
		r.Enabled = Bool(true)
	}
	setDefault(&r.Attempts, defaultRetryAttempts)
	setDefault(&r.BaseDelay, defaultRetryBaseDelay)
	setDefault(&r.MaxDelay, defaultRetryMaxDelay)
	r.Backoff = normEnum(r.Backoff)
	setDefault(&r.Backoff, defaultRetryBackoff)
	r.TopicMode = normEnum(r.TopicMode)
	setDefault(&r.TopicMode, defaultRetryTopicMode)
	setDefault(&r.Partitions, defaultRetryPartitions)
	setDefault(&r.ReplicationFactor, defaultRetryReplication)
	setDefault(&r.Retention, defaultRetryRetention)
	setDefault(&r.Segment, defaultRetrySegment)

	d := &c.DLQ
	if d.Enabled == nil {
		d.Enabled = Bool(true)
	}
	setDefault(&d.Partitions, defaultDLQPartitions)
	setDefault(&d.ReplicationFactor, defaultDLQReplication)
	setDefault(&d.Retention, defaultDLQRetention)
	setDefault(&d.MaxReprocess, defaultDLQMaxReprocess)

	m := &c.Monitoring
	if m.Enabled == nil {
		m.Enabled = Bool(true)
	}
	setDefault(&m.Prefix, defaultMonitoringPrefix)
}

// setDefault stores def in *field when *field is the zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// TLSEnabled reports whether broker connections use TLS: the value of
// TLS.Enabled when it is set, otherwise true exactly when SASL.Mechanism is
// set, so credentials do not cross the network in clear by accident.
func (c Config) TLSEnabled() bool {
	if c.TLS.Enabled != nil {
		return *c.TLS.Enabled
	}
	return strings.TrimSpace(c.SASL.Mechanism) != ""
}

// RetryEnabled reports whether delayed retries are on; unset means true.
func (c Config) RetryEnabled() bool { return boolOr(c.Retry.Enabled, true) }

// DLQEnabled reports whether the dead-letter queue is on; unset means true.
func (c Config) DLQEnabled() bool { return boolOr(c.DLQ.Enabled, true) }

// MonitoringEnabled reports whether the monitoring endpoints are on; unset
// means true.
func (c Config) MonitoringEnabled() bool { return boolOr(c.Monitoring.Enabled, true) }

// FromBeginning reports whether a group without committed offsets starts at
// the oldest record; unset means false.
func (c Config) FromBeginning() bool { return boolOr(c.Subscriptions.FromBeginning, false) }

// Idempotent reports whether the producers are idempotent; unset means false.
func (c Config) Idempotent() bool { return boolOr(c.Producer.Idempotent, false) }

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// SlogLevel returns the slog level named by LogLevel (case-insensitive).
// An empty or unknown LogLevel gives slog.LevelInfo.
func (c Config) SlogLevel() slog.Level {
	switch normEnum(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Validate reports every problem of a config on which [Config.SetDefaults]
// has run. It returns nil for a valid config, and otherwise one error that
// joins (errors.Join) [ErrInvalidConfig] with one line per problem; each
// line names the field by its Go path (such as Retry.Backoff), the bad value
// and what is allowed, plus the environment variable that sets the field.
// The values of SASL.Password and Monitoring.AdminToken never appear.
//
// When TLS is enabled (see [Config.TLSEnabled]) Validate also reads and
// parses TLS.CAFile, TLS.CertFile and TLS.KeyFile.
func (c Config) Validate() error {
	var v validator
	c.validateTop(&v)
	c.validateSecurity(&v)
	c.validateConsumer(&v)
	c.validateProducer(&v)
	c.validateRetry(&v)
	c.validateDLQ(&v)
	c.validateMonitoring(&v)
	if len(v.problems) == 0 {
		return nil
	}
	return errors.Join(append([]error{ErrInvalidConfig}, v.problems...)...)
}

// validator collects the problems Validate finds.
type validator struct{ problems []error }

// add records a problem with field: format and args say what follows the
// field name, and env, when not empty, names the variable that sets the
// field.
func (v *validator) add(field, env, format string, args ...any) {
	msg := field + " " + fmt.Sprintf(format, args...)
	if env != "" {
		msg += " (env " + env + ")"
	}
	v.problems = append(v.problems, errors.New(msg))
}

// oneOf records a problem when value is not in allowed.
func (v *validator) oneOf(field, env, value string, allowed []string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(field, env, "= %q: want one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) positive(field, env string, d time.Duration) {
	if d <= 0 {
		v.add(field, env, "= %s: want a duration > 0", d)
	}
}

func (v *validator) notNegative(field, env string, n int64) {
	if n < 0 {
		v.add(field, env, "= %d: want a whole number >= 0", n)
	}
}

func (c Config) validateTop(v *validator) {
	if len(c.Brokers) == 0 {
		v.add("Brokers", envBrokers, "is empty: want at least one host:port")
	}
	for i, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			v.add(fmt.Sprintf("Brokers[%d]", i), envBrokers, "= %q: want host:port, such as \"localhost:9092\" (%v)", b, err)
		}
	}
	if !validTopicName.MatchString(c.ServiceName) {
		v.add("ServiceName", "", "= %q: want letters, digits, '.', '_' and '-' only, as it prefixes topic names (it defaults to ClientID)", c.ServiceName)
	}
	if ver, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		v.add("Version", envVersion, "= %q: want a Kafka version such as \"2.8.0\"", c.Version)
	} else if !ver.IsAtLeast(minSupportedKafkaVersion) || !sarama.MaxVersion.IsAtLeast(ver) {
		v.add("Version", envVersion, "= %q: want a version from %s to %s", c.Version, minSupportedKafkaVersion, sarama.MaxVersion)
	}
	v.oneOf("LogLevel", envLogLevel, normEnum(c.LogLevel), allowedLogLevels)
	for i, t := range c.Subscriptions.Topics {
		if !validTopicName.MatchString(t) || t == "." || t == ".." || len(t) > 249 {
			v.add(fmt.Sprintf("Subscriptions.Topics[%d]", i), envTopics, "= %q: want a topic name of at most 249 letters, digits, '.', '_' and '-'", t)
		}
	}
}

// checkHostPort reports whether s is host:port with a port from 1 to 65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" || strings.ContainsAny(host, " \t") {
		return errors.New("bad host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > math.MaxUint16 {
		return errors.New("port must be a number from 1 to 65535")
	}
	return nil
}

func (c Config) validateSecurity(v *validator) {
	s := c.SASL
	mech := normEnum(s.Mechanism)
	if mech != "" {
		v.oneOf("SASL.Mechanism", envSASLMechanism, mech, allowedSASLMechanisms)
		if s.Username == "" {
			v.add("SASL.Username", envSASLUsername, "is empty: want a username when SASL.Mechanism is %q", mech)
		}
		if s.Password == "" {
			v.add("SASL.Password", envSASLPassword, "is empty: want a password when SASL.Mechanism is %q", mech)
		}
	} else if s.Username != "" || s.Password != "" {
		v.add("SASL.Mechanism", envSASLMechanism, "is empty but SASL.Username or SASL.Password is set: want one of %s",
			strings.Join(allowedSASLMechanisms, ", "))
	}

	if !c.TLSEnabled() {
		return
	}
	t := c.TLS
	if t.CAFile != "" {
		if _, err := loadCAPool(t.CAFile); err != nil {
			v.add("TLS.CAFile", envSSLCAFile, "= %q: want a readable PEM file of CA certificates: %v", t.CAFile, err)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.add("TLS.KeyFile", envSSLKeyFile, "is empty but TLS.CertFile is set: want both or neither")
	case t.CertFile == "" && t.KeyFile != "":
		v.add("TLS.CertFile", envSSLCertFile, "is empty but TLS.KeyFile is set: want both or neither")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			v.add("TLS.CertFile", envSSLCertFile, "= %q with TLS.KeyFile = %q: want a readable PEM certificate and its matching private key: %v",
				t.CertFile, t.KeyFile, err)
		}
	}
}

func (c Config) validateConsumer(v *validator) {
	cc := c.Consumer
	if cc.GroupID == "" {
		v.add("Consumer.GroupID", envConsumerGroup, "is empty: want a consumer group name")
	}
	v.positive("Consumer.SessionTimeout", envSessionTimeout, cc.SessionTimeout)
	v.positive("Consumer.HeartbeatInterval", envHeartbeatInterval, cc.HeartbeatInterval)
	if cc.SessionTimeout > 0 && cc.HeartbeatInterval >= cc.SessionTimeout {
		v.add("Consumer.HeartbeatInterval", envHeartbeatInterval, "= %s: want less than Consumer.SessionTimeout (%s)",
			cc.HeartbeatInterval, cc.SessionTimeout)
	}
	if cc.FetchMinBytes <= 0 {
		v.add("Consumer.FetchMinBytes", "", "= %d: want a number of bytes > 0", cc.FetchMinBytes)
	}
	if cc.FetchDefaultBytes <= 0 {
		v.add("Consumer.FetchDefaultBytes", "", "= %d: want a number of bytes > 0", cc.FetchDefaultBytes)
	}
	if cc.FetchMaxBytes < 0 {
		v.add("Consumer.FetchMaxBytes", "", "= %d: want a number of bytes >= 0 (0 means no limit)", cc.FetchMaxBytes)
	}
	if cc.MaxWaitTime < time.Millisecond {
		v.add("Consumer.MaxWaitTime", envFetchMaxWait, "= %s: want a duration of at least 1ms", cc.MaxWaitTime)
	}
	strategy := normEnum(cc.RebalanceStrategy)
	v.oneOf("Consumer.RebalanceStrategy", envRebalanceStrategy, strategy, allowedRebalanceStrategy)
	if ver, err := sarama.ParseKafkaVersion(c.Version); strategy == "cooperative-sticky" && err == nil && !ver.IsAtLeast(cooperativeStickyMinKafka) {
		v.add("Consumer.RebalanceStrategy", envRebalanceStrategy, "= %q needs Version %s or newer, got %q", strategy, cooperativeStickyMinKafka, c.Version)
	}
	v.positive("Consumer.RebalanceTimeout", envRebalanceTimeout, cc.RebalanceTimeout)
	if cc.ShutdownTimeout < 0 {
		v.add("Consumer.ShutdownTimeout", envShutdownTimeout, "= %s: want a duration >= 0", cc.ShutdownTimeout)
	}
}

func (c Config) validateProducer(v *validator) {
	p := c.Producer
	if p.MaxInFlightRequests < 1 {
		v.add("Producer.MaxInFlightRequests", "", "= %d: want a number >= 1", p.MaxInFlightRequests)
	}
	if (p.Linger < 0 && p.Linger != NoLinger) || p.Linger > maxLinger {
		v.add("Producer.Linger", envProducerLinger, "= %s: want a duration from 0 to %s, or NoLinger", p.Linger, maxLinger)
	}
	acks := normAcks(p.RequiredAcks)
	v.oneOf("Producer.RequiredAcks", envProducerAcks, acks, allowedRequiredAcks)
	compression := normEnum(p.Compression)
	v.oneOf("Producer.Compression", envProducerCompression, compression, allowedCompressions)
	if ver, err := sarama.ParseKafkaVersion(c.Version); compression == "zstd" && err == nil && !ver.IsAtLeast(zstdMinKafka) {
		v.add("Producer.Compression", envProducerCompression, "= %q needs Version %s or newer, got %q", compression, zstdMinKafka, c.Version)
	}
	if c.Idempotent() {
		if acks != "all" {
			v.add("Producer.RequiredAcks", envProducerAcks, "= %q: want \"all\" when Producer.Idempotent is true", p.RequiredAcks)
		}
		if p.MaxInFlightRequests > 1 {
			v.add("Producer.MaxInFlightRequests", "", "= %d: want 1 when Producer.Idempotent is true", p.MaxInFlightRequests)
		}
	}
}

func (c Config) validateRetry(v *validator) {
	r := c.Retry
	v.notNegative("Retry.Attempts", envRetryAttempts, int64(r.Attempts))
	v.positive("Retry.BaseDelay", envRetryBaseDelay, r.BaseDelay)
	v.positive("Retry.MaxDelay", envRetryMaxDelay, r.MaxDelay)
	if r.BaseDelay > r.MaxDelay && r.MaxDelay > 0 {
		v.add("Retry.BaseDelay", envRetryBaseDelay, "= %s: want at most Retry.MaxDelay (%s)", r.BaseDelay, r.MaxDelay)
	}
	v.oneOf("Retry.Backoff", envRetryBackoff, normEnum(r.Backoff), allowedRetryBackoffs)
	if !(r.Jitter >= 0 && r.Jitter <= 1) { // also catches NaN
		v.add("Retry.Jitter", envRetryJitter, "= %v: want a fraction from 0 to 1", r.Jitter)
	}
	v.oneOf("Retry.TopicMode", envRetryTopicMode, normEnum(r.TopicMode), allowedRetryTopicModes)
	v.notNegative("Retry.Partitions", envRetryPartitions, int64(r.Partitions))
	v.notNegative("Retry.ReplicationFactor", envRetryReplication, int64(r.ReplicationFactor))
	if r.Retention <= r.MaxDelay {
		v.add("Retry.Retention", envRetryRetention, "= %s: want more than Retry.MaxDelay (%s)", r.Retention, r.MaxDelay)
	}
	v.positive("Retry.Segment", envRetrySegment, r.Segment)
}

func (c Config) validateDLQ(v *validator) {
	d := c.DLQ
	v.notNegative("DLQ.Partitions", envDLQPartitions, int64(d.Partitions))
	v.notNegative("DLQ.ReplicationFactor", envDLQReplication, int64(d.ReplicationFactor))
	v.positive("DLQ.Retention", envDLQRetention, d.Retention)
	v.notNegative("DLQ.MaxReprocess", envDLQMaxReprocess, int64(d.MaxReprocess))
}

func (c Config) validateMonitoring(v *validator) {
	p := c.Monitoring.Prefix
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		v.add("Monitoring.Prefix", "", "= %q: want a path that starts with '/' and does not end with one, such as \"/kafka\"", p)
	}
}

// loadCAPool reads a PEM file of CA certificates.
func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path) //nolint:gosec // G304: the path is the operator's own configuration.
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// redacted replaces the value of a secret field whenever a config is printed
// or logged. An empty secret is shown empty, so one can still tell that it is
// unset.
const redacted = "[redacted]"

// isSecretField reports whether a string field of the config types holds a
// secret, judging by its name, so a secret field added later is hidden too.
func isSecretField(name string) bool {
	for _, s := range []string{"Password", "Token", "Secret"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// String formats c like %+v does, with the pointers dereferenced and the
// values of SASL.Password and Monitoring.AdminToken replaced by
// "[redacted]" when they are set.
func (c Config) String() string { return printRedacted(c, false) }

// GoString formats c as a Go composite literal, like %#v does, with the
// secrets redacted as in [Config.String].
func (c Config) GoString() string { return printRedacted(c, true) }

// Format implements fmt.Formatter so that no verb, not even %d or %x, can
// print the secrets: %#v prints [Config.GoString] and every other verb
// formats [Config.String].
func (c Config) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c) }

// LogValue implements slog.LogValuer: c is logged as a group with
// snake_case keys and the secrets redacted as in [Config.String].
func (c Config) LogValue() slog.Value { return logValueOf(reflect.ValueOf(c)) }

// String formats s like %+v does, with Password replaced by "[redacted]"
// when it is set.
func (s SASLConfig) String() string { return printRedacted(s, false) }

// GoString formats s as a Go composite literal with Password redacted.
func (s SASLConfig) GoString() string { return printRedacted(s, true) }

// Format implements fmt.Formatter so that no verb prints Password.
func (s SASLConfig) Format(f fmt.State, verb rune) { formatRedacted(f, verb, s) }

// LogValue implements slog.LogValuer with Password redacted.
func (s SASLConfig) LogValue() slog.Value { return logValueOf(reflect.ValueOf(s)) }

// String formats m like %+v does, with AdminToken replaced by "[redacted]"
// when it is set.
func (m MonitoringConfig) String() string { return printRedacted(m, false) }

// GoString formats m as a Go composite literal with AdminToken redacted.
func (m MonitoringConfig) GoString() string { return printRedacted(m, true) }

// Format implements fmt.Formatter so that no verb prints AdminToken.
func (m MonitoringConfig) Format(f fmt.State, verb rune) { formatRedacted(f, verb, m) }

// LogValue implements slog.LogValuer with AdminToken redacted.
func (m MonitoringConfig) LogValue() slog.Value { return logValueOf(reflect.ValueOf(m)) }

func formatRedacted(f fmt.State, verb rune, v any) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, printRedacted(v, true))
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), printRedacted(v, false))
}

var durationType = reflect.TypeFor[time.Duration]()

// printRedacted prints one of the config structs, in Go syntax when goSyntax.
func printRedacted(v any, goSyntax bool) string {
	var b strings.Builder
	writeRedacted(&b, reflect.ValueOf(v), goSyntax)
	return b.String()
}

func writeRedacted(b *strings.Builder, v reflect.Value, goSyntax bool) {
	switch {
	case v.Type() == durationType && !goSyntax:
		b.WriteString(time.Duration(v.Int()).String())
	case v.Kind() == reflect.Struct:
		sep := " "
		if goSyntax {
			b.WriteString(v.Type().String())
			sep = ", "
		}
		b.WriteByte('{')
		for i := range v.NumField() {
			if i > 0 {
				b.WriteString(sep)
			}
			field := v.Type().Field(i)
			b.WriteString(field.Name)
			b.WriteByte(':')
			fv := v.Field(i)
			if fv.Kind() == reflect.String && isSecretField(field.Name) && fv.String() != "" {
				if goSyntax {
					b.WriteString(strconv.Quote(redacted))
				} else {
					b.WriteString(redacted)
				}
				continue
			}
			writeRedacted(b, fv, goSyntax)
		}
		b.WriteByte('}')
	case v.Kind() == reflect.Pointer:
		switch {
		case v.IsNil() && goSyntax:
			b.WriteString("nil")
		case v.IsNil():
			b.WriteString("<nil>")
		case goSyntax && v.Elem().Kind() == reflect.Bool:
			fmt.Fprintf(b, "kafkaevents.Bool(%t)", v.Elem().Bool())
		default:
			writeRedacted(b, v.Elem(), goSyntax)
		}
	case goSyntax:
		fmt.Fprintf(b, "%#v", v.Interface())
	default:
		fmt.Fprintf(b, "%v", v.Interface())
	}
}

// logValueOf turns one of the config structs into a slog group.
func logValueOf(v reflect.Value) slog.Value {
	attrs := make([]slog.Attr, 0, v.NumField())
	for i := range v.NumField() {
		field := v.Type().Field(i)
		key := snakeCase(field.Name)
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.String && isSecretField(field.Name) && fv.String() != "":
			attrs = append(attrs, slog.String(key, redacted))
		case fv.Kind() == reflect.Struct:
			attrs = append(attrs, slog.Attr{Key: key, Value: logValueOf(fv)})
		case fv.Kind() == reflect.Pointer && fv.IsNil():
			attrs = append(attrs, slog.Any(key, nil))
		case fv.Kind() == reflect.Pointer:
			attrs = append(attrs, slog.Any(key, fv.Elem().Interface()))
		default:
			attrs = append(attrs, slog.Any(key, fv.Interface()))
		}
	}
	return slog.GroupValue(attrs...)
}

// snakeCase turns a Go field name into a snake_case log key, keeping
// initialisms together: "CAFile" gives "ca_file" and "ClientID" "client_id".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prev := rune(s[i-1])
			nextLower := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
			if (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9') || nextLower {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
