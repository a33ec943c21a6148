package kafkaevents

import (
	"errors"
	"time"
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
	// StartupTimeout bounds each wait of the start: connecting to the
	// brokers in New (or NewContext), and creating the retry and DLQ topics
	// and connecting the retry consumer when the router starts. When it runs out, the error names the brokers
	// and the likely cause (a listener that does not speak what is
	// configured, such as SASL against a plaintext port, never answers).
	// Optional. Default: 20s. Environment: KAFKA_STARTUP_TIMEOUT.
	StartupTimeout time.Duration

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
	// InstanceID turns on static membership (KIP-345, Kafka's
	// group.instance.id): a member that restarts with the same ID within
	// SessionTimeout gets its partitions back at once, without a rebalance
	// and without waiting for its previous session to expire. Each consumer
	// group member of the process gets an ID of its own, derived from this
	// one: "{InstanceID}.{topic}" for each subscribed topic in GroupID, and
	// "{InstanceID}.retry" for the retry consumer in GroupID + ".retry"
	// (see docs/operations.md#static-membership). Give every instance of
	// the service a different ID that stays the same across its restarts,
	// such as the pod name of a StatefulSet. A static member does not leave
	// its group when it stops: its partitions wait for it until
	// SessionTimeout passes, so choose SessionTimeout longer than a restart.
	// Two running instances with the same ID fence each other. It may hold
	// at most 200 letters, digits, '.', '_' and '-', and needs Version
	// 2.3.0 or newer. Optional. Default: empty, dynamic membership.
	// Environment: KAFKA_CONSUMER_INSTANCE_ID.
	InstanceID string
	// SessionTimeout is how long the group coordinator waits for a heartbeat
	// before it evicts a member. Optional. Default: 30s. Environment:
	// KAFKA_SESSION_TIMEOUT.
	SessionTimeout time.Duration
	// HeartbeatInterval is the time between heartbeats; it must be shorter
	// than SessionTimeout. Optional. Default: 3s, or a third of
	// SessionTimeout when that is shorter. Environment:
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
	// CommitInterval is how often the offsets of settled records are
	// committed by the handlers' consumer group and the retry consumer's:
	// in a transaction of their own with exactly-once hand-offs (a
	// hand-off's transaction commits them within 10ms of it anyway), else
	// by sarama (Consumer.Offsets.AutoCommit.Interval). A crash handles
	// again at most the records settled since the last commit, so a shorter
	// interval means fewer duplicates after a crash, at the cost of one
	// commit per interval while records flow (an idle member commits
	// nothing). A stop, a rebalance and the end of a claim commit at once,
	// whatever the interval. Optional. Default: 100ms (measured in
	// RELIABILITY.md: about 10 times fewer duplicates after a crash than
	// sarama's 1s, at no cost the benchmarks can see). Allowed: at least
	// 10ms. Environment: KAFKA_CONSUMER_COMMIT_INTERVAL.
	CommitInterval time.Duration
	// Concurrency is how many records of one partition each handler may
	// handle at once, unless the handler sets its own with
	// [WithConcurrency]; 1 is one record at a time, as watermill-kafka does.
	// Above 1, records with the same key still run one at a time, in offset
	// order, and commits never pass a record that is not settled (see
	// docs/concurrency.md). Optional. Default: 1. Allowed: 1 to
	// [MaxConcurrency]. Environment: KAFKA_CONSUMER_CONCURRENCY.
	Concurrency int
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
	// ExactlyOnceHandoffs writes each retry and DLQ hand-off, and commits
	// the consumed offset past its original record, in one Kafka
	// transaction: a record is handed off once whatever the process does
	// between the two (see docs/exactly-once.md). The consumer groups then
	// read read_committed and commit only through those transactions, at
	// least every Consumer.CommitInterval. It needs Version 2.5.0 or newer
	// and brokers that allow transactions; the transactional ID is
	// {ServiceName}.handoffs.{Consumer.InstanceID}, or a random suffix when
	// that is empty, and New fails, naming this option, when the brokers
	// refuse it. Optional. Default: true when Version is 2.5.0 or newer
	// (the default 2.8.0 is), else false; set false for brokers without
	// transactions. Environment: KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS.
	ExactlyOnceHandoffs *bool
}

// NoLinger is the Producer.Linger that sends every record at once.
const NoLinger time.Duration = -1

// maxLinger bounds Producer.Linger: a hand-off that has to wait for its
// record (see docs/architecture.md) holds its partition for up to that long.
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
	// and no longer than MaxDelay. Optional. Default: 1s, or MaxDelay when
	// that is shorter. Environment: KAFKA_RETRY_BASE_DELAY, where a bare
	// number of milliseconds below 100 is refused (see [Config.FromLookup]).
	BaseDelay time.Duration
	// MaxDelay caps the delay between retries. Optional. Default: 30s.
	// Environment: KAFKA_RETRY_MAX_DELAY, where a bare number of
	// milliseconds below 100 is refused (see [Config.FromLookup]).
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
	// KeepKeyOrder keeps each key's order across retries and the DLQ
	// (delayedretry.Policy.KeepKeyOrder; see docs/key-order.md) for the
	// handlers without a WithRetry policy of their own: the later records
	// of a failed record's key wait, set aside in {service}.parked, until
	// it is handled. A handler with WithOrdering(Unordered) is refused.
	// Optional. Default: false. Environment: KAFKA_RETRY_KEEP_KEY_ORDER.
	KeepKeyOrder bool
	// DeadLetteredKey is what becomes of a parked key whose head is
	// dead-lettered: "hold" keeps it parked until the head is reprocessed
	// or an operator releases the key; "release" lets the key go on, and
	// the DLQ record says (x-dlq-key-order) that its order broke.
	// Case-insensitive. Optional. Default: "hold". Environment:
	// KAFKA_RETRY_DEAD_LETTERED_KEY.
	DeadLetteredKey string
	// KeyOrderLimit caps the parked records (heads and records set aside)
	// of one partition. A record that would pass it waits, and with it the
	// partition, until a key is released; readiness warns meanwhile.
	// Negative is an error. Optional. Default: 10000. Environment:
	// KAFKA_RETRY_KEY_ORDER_LIMIT.
	KeyOrderLimit int
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
	// UI turns the operator console at {Prefix}/ui/ on or off; it is only
	// served when the endpoints are. Optional. Default: true.
	// Environment: KAFKA_MONITORING_UI.
	UI *bool
	// TraceURL links the console's DLQ records to their trace: a URL in
	// which "{traceId}" is replaced by the trace ID, such as
	// "https://jaeger.example/trace/{traceId}". Optional. Default: no
	// links. Environment: KAFKA_MONITORING_TRACE_URL.
	TraceURL string
}
