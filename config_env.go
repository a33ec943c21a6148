package kafkaevents

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// The environment variables that [Config.FromEnv] reads.
const (
	envClientID            = "KAFKA_CLIENT_ID"
	envBrokers             = "KAFKA_BROKERS"
	envVersion             = "KAFKA_VERSION"
	envLogLevel            = "KAFKA_LOG_LEVEL"
	envSSLEnabled          = "KAFKA_SSL_ENABLED"
	envSSLCAFile           = "KAFKA_SSL_CA_FILE"
	envSSLCertFile         = "KAFKA_SSL_CERT_FILE"
	envSSLKeyFile          = "KAFKA_SSL_KEY_FILE"
	envSSLInsecure         = "KAFKA_SSL_INSECURE_SKIP_VERIFY"
	envSASLMechanism       = "KAFKA_SASL_MECHANISM"
	envSASLUsername        = "KAFKA_SASL_USERNAME"
	envSASLPassword        = "KAFKA_SASL_PASSWORD" //nolint:gosec // G101: the name of a variable, not a credential.
	envConsumerGroup       = "KAFKA_CONSUMER_GROUP"
	envSessionTimeout      = "KAFKA_SESSION_TIMEOUT"
	envHeartbeatInterval   = "KAFKA_HEARTBEAT_INTERVAL"
	envFetchMaxWait        = "KAFKA_FETCH_MAX_WAIT"
	envRebalanceStrategy   = "KAFKA_REBALANCE_STRATEGY"
	envRebalanceTimeout    = "KAFKA_REBALANCE_TIMEOUT"
	envShutdownTimeout     = "KAFKA_SHUTDOWN_TIMEOUT"
	envCommitInterval      = "KAFKA_CONSUMER_COMMIT_INTERVAL"
	envConsumerConcurrency = "KAFKA_CONSUMER_CONCURRENCY"
	envStartupTimeout      = "KAFKA_STARTUP_TIMEOUT"
	envProducerIdempotent  = "KAFKA_PRODUCER_IDEMPOTENT"
	envProducerAcks        = "KAFKA_PRODUCER_ACKS"
	envProducerCompression = "KAFKA_PRODUCER_COMPRESSION"
	envProducerLinger      = "KAFKA_PRODUCER_LINGER"
	envTopics              = "KAFKA_TOPICS"
	envFromBeginning       = "KAFKA_FROM_BEGINNING"
	envRetryEnabled        = "KAFKA_RETRY_ENABLED"
	envRetryAttempts       = "KAFKA_RETRY_ATTEMPTS"
	envRetryBaseDelay      = "KAFKA_RETRY_BASE_DELAY"
	envRetryMaxDelay       = "KAFKA_RETRY_MAX_DELAY"
	envRetryBackoff        = "KAFKA_RETRY_BACKOFF"
	envRetryJitter         = "KAFKA_RETRY_JITTER"
	envRetryTopicMode      = "KAFKA_RETRY_TOPIC_MODE"
	envRetryPartitions     = "KAFKA_RETRY_PARTITIONS"
	envRetryReplication    = "KAFKA_RETRY_REPLICATION_FACTOR"
	envRetryRetention      = "KAFKA_RETRY_RETENTION"
	envRetrySegment        = "KAFKA_RETRY_SEGMENT"
	envDLQEnabled          = "KAFKA_DLQ_ENABLED"
	envDLQPartitions       = "KAFKA_DLQ_PARTITIONS"
	envDLQReplication      = "KAFKA_DLQ_REPLICATION_FACTOR"
	envDLQRetention        = "KAFKA_DLQ_RETENTION"
	envDLQMaxReprocess     = "KAFKA_DLQ_MAX_REPROCESS"
	envMonitoringEnabled   = "KAFKA_MONITORING_ENABLED"
	envMonitoringUI        = "KAFKA_MONITORING_UI"
	envMonitoringTraceURL  = "KAFKA_MONITORING_TRACE_URL"
	envAdminToken          = "KAFKA_ADMIN_TOKEN" //nolint:gosec // G101: the name of a variable, not a credential.
)

// FromEnv returns a copy of c in which every field that is still unset (zero
// or nil) is filled from the process environment; fields already set win.
// It is [Config.FromLookup] with os.LookupEnv; see there for the variables
// and their syntax.
func (c Config) FromEnv() (Config, error) {
	return c.FromLookup(os.LookupEnv)
}

// FromLookup returns a copy of c in which every field that is still unset
// (zero or nil) is filled from the variables that lookup reports; fields
// already set win and their variables are not read. The variable of each
// field is named in the field's documentation. A nil lookup changes nothing.
//
// An empty variable counts as unset. Values are read as follows:
//   - durations in Go syntax ("500ms", "2s", "1m30s") or as a whole number of
//     milliseconds ("1500" is 1.5s); see [ParseDuration]. For
//     KAFKA_RETRY_BASE_DELAY and KAFKA_RETRY_MAX_DELAY a bare number below
//     100 is an error: "5" is more likely meant as 5s than as retry topics
//     of 5ms, 10ms, 20ms, which would stay on the cluster;
//   - booleans as true/false, 1/0, yes/no or on/off, in any case;
//   - lists split on commas, with spaces around items trimmed and empty
//     items dropped;
//   - numbers as base-10 integers, KAFKA_RETRY_JITTER as a decimal fraction;
//   - strings as they are (enums are checked by [Config.Validate]).
//
// A value that does not parse is an error naming the variable, the value and
// what is allowed, such as `KAFKA_RETRY_ATTEMPTS="three": want a whole
// number`. FromLookup reports every such variable in one error that joins
// [ErrInvalidConfig] with one line per variable, and then returns c
// unchanged.
func (c Config) FromLookup(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		return c, nil
	}
	orig := c
	e := envReader{lookup: lookup}

	e.str(envClientID, &c.ClientID)
	e.list(envBrokers, &c.Brokers)
	e.str(envVersion, &c.Version)
	e.str(envLogLevel, &c.LogLevel)

	e.boolPtr(envSSLEnabled, &c.TLS.Enabled)
	e.str(envSSLCAFile, &c.TLS.CAFile)
	e.str(envSSLCertFile, &c.TLS.CertFile)
	e.str(envSSLKeyFile, &c.TLS.KeyFile)
	e.boolVal(envSSLInsecure, &c.TLS.InsecureSkipVerify)

	e.str(envSASLMechanism, &c.SASL.Mechanism)
	e.str(envSASLUsername, &c.SASL.Username)
	e.str(envSASLPassword, &c.SASL.Password)

	e.str(envConsumerGroup, &c.Consumer.GroupID)
	e.duration(envSessionTimeout, &c.Consumer.SessionTimeout)
	e.duration(envHeartbeatInterval, &c.Consumer.HeartbeatInterval)
	e.duration(envFetchMaxWait, &c.Consumer.MaxWaitTime)
	e.str(envRebalanceStrategy, &c.Consumer.RebalanceStrategy)
	e.duration(envRebalanceTimeout, &c.Consumer.RebalanceTimeout)
	e.duration(envShutdownTimeout, &c.Consumer.ShutdownTimeout)
	e.duration(envCommitInterval, &c.Consumer.CommitInterval)
	envInt(&e, envConsumerConcurrency, &c.Consumer.Concurrency)
	e.duration(envStartupTimeout, &c.StartupTimeout)

	e.boolPtr(envProducerIdempotent, &c.Producer.Idempotent)
	e.str(envProducerAcks, &c.Producer.RequiredAcks)
	e.str(envProducerCompression, &c.Producer.Compression)
	e.durationAsZero(envProducerLinger, &c.Producer.Linger, NoLinger, "a duration such as 1ms or 5ms, or 0 to send every record at once")

	e.list(envTopics, &c.Subscriptions.Topics)
	e.boolPtr(envFromBeginning, &c.Subscriptions.FromBeginning)

	e.boolPtr(envRetryEnabled, &c.Retry.Enabled)
	envInt(&e, envRetryAttempts, &c.Retry.Attempts)
	e.retryDelay(envRetryBaseDelay, &c.Retry.BaseDelay)
	e.retryDelay(envRetryMaxDelay, &c.Retry.MaxDelay)
	e.str(envRetryBackoff, &c.Retry.Backoff)
	e.fraction(envRetryJitter, &c.Retry.Jitter)
	e.str(envRetryTopicMode, &c.Retry.TopicMode)
	envInt(&e, envRetryPartitions, &c.Retry.Partitions)
	envInt(&e, envRetryReplication, &c.Retry.ReplicationFactor)
	e.duration(envRetryRetention, &c.Retry.Retention)
	e.duration(envRetrySegment, &c.Retry.Segment)

	e.boolPtr(envDLQEnabled, &c.DLQ.Enabled)
	envInt(&e, envDLQPartitions, &c.DLQ.Partitions)
	envInt(&e, envDLQReplication, &c.DLQ.ReplicationFactor)
	e.duration(envDLQRetention, &c.DLQ.Retention)
	envInt(&e, envDLQMaxReprocess, &c.DLQ.MaxReprocess)

	e.boolPtr(envMonitoringEnabled, &c.Monitoring.Enabled)
	e.boolPtr(envMonitoringUI, &c.Monitoring.UI)
	e.str(envMonitoringTraceURL, &c.Monitoring.TraceURL)
	e.str(envAdminToken, &c.Monitoring.AdminToken)

	if len(e.problems) > 0 {
		return orig, errors.Join(append([]error{ErrInvalidConfig}, c.redactErrs(e.problems)...)...)
	}
	return c, nil
}

// envReader fills unset fields from variables and collects parse problems.
type envReader struct {
	lookup   func(string) (string, bool)
	problems []error
}

// get returns the variable's value, and false when it is unset or empty.
func (e *envReader) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	return v, ok && v != ""
}

// getTrimmed is get for values that are parsed, where surrounding spaces
// do not count.
func (e *envReader) getTrimmed(name string) (string, bool) {
	v, ok := e.get(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// bad records that the variable's value does not parse. The value is quoted;
// none of the variables that hold a secret is ever parsed, so none is shown.
func (e *envReader) bad(name, value, want string) {
	e.problems = append(e.problems, fmt.Errorf("%s=%q: want %s", name, value, want))
}

func (e *envReader) str(name string, dst *string) {
	if *dst != "" {
		return
	}
	if v, ok := e.get(name); ok {
		*dst = v
	}
}

func (e *envReader) list(name string, dst *[]string) {
	if len(*dst) > 0 {
		return
	}
	v, ok := e.get(name)
	if !ok {
		return
	}
	if items := splitList(v); len(items) > 0 {
		*dst = items
	}
}

// splitList splits s on commas, trims spaces around the items and drops the
// empty ones.
func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

const wantBool = "true or false (or 1/0, yes/no, on/off)"

// boolPtr fills a tri-state field that is still nil.
func (e *envReader) boolPtr(name string, dst **bool) {
	if *dst != nil {
		return
	}
	if v, ok := e.boolean(name); ok {
		*dst = Bool(v)
	}
}

// boolVal fills a plain bool field that is still false.
func (e *envReader) boolVal(name string, dst *bool) {
	if *dst {
		return
	}
	if v, ok := e.boolean(name); ok {
		*dst = v
	}
}

// boolean reads name as a boolean; ok is false when it is unset or bad (a
// bad value is recorded).
func (e *envReader) boolean(name string) (v, ok bool) {
	s, set := e.getTrimmed(name)
	if !set {
		return false, false
	}
	v, err := parseBool(s)
	if err != nil {
		e.bad(name, s, wantBool)
		return false, false
	}
	return v, true
}

// parseBool accepts true/false, 1/0, yes/no and on/off in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

// minBareRetryDelay is the least bare number of milliseconds a retry delay
// variable accepts.
const minBareRetryDelay = 100

// retryDelay is duration for a retry delay, which names retry topics: a bare
// number below minBareRetryDelay ("5", meant as 5 seconds) is refused, as it
// would create topics such as orders.retry.5ms that stay on the cluster.
func (e *envReader) retryDelay(name string, dst *time.Duration) {
	if *dst != 0 {
		return
	}
	if v, ok := e.getTrimmed(name); ok && isDigits(v) {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 && ms < minBareRetryDelay {
			e.bad(name, v, fmt.Sprintf("a duration with its unit, such as %ss; a bare number is milliseconds, and %sms would create retry topics such as {service}.retry.%sms (write %sms if you mean it)", v, v, v, v))
			return
		}
	}
	e.duration(name, dst)
}

func (e *envReader) duration(name string, dst *time.Duration) {
	e.durationAsZero(name, dst, 0, "a non-negative duration such as 500ms, 2s or 1m30s, or a whole number of milliseconds")
}

// durationAsZero is duration for a field whose zero takes a default: a
// value of 0 sets it to zero instead (Producer.Linger: NoLinger).
func (e *envReader) durationAsZero(name string, dst *time.Duration, zero time.Duration, want string) {
	if *dst != 0 {
		return
	}
	v, ok := e.getTrimmed(name)
	if !ok {
		return
	}
	d, err := ParseDuration(v)
	if err != nil {
		e.bad(name, v, want)
		return
	}
	if d == 0 {
		d = zero
	}
	*dst = d
}

// envInt fills an integer field of any width, rejecting values that do not
// fit it.
func envInt[T int | int16 | int32](e *envReader, name string, dst *T) {
	if *dst != 0 {
		return
	}
	v, ok := e.getTrimmed(name)
	if !ok {
		return
	}
	var zero T
	bits := 64
	switch any(zero).(type) {
	case int16:
		bits = 16
	case int32:
		bits = 32
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			e.bad(name, v, fmt.Sprintf("a whole number that fits in %d bits", bits))
		} else {
			e.bad(name, v, "a whole number")
		}
		return
	}
	*dst = T(n)
}

func (e *envReader) fraction(name string, dst *float64) {
	if *dst != 0 {
		return
	}
	v, ok := e.getTrimmed(name)
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		e.bad(name, v, "a fraction from 0 to 1, such as 0.2")
		return
	}
	*dst = f
}

// ParseDuration parses a non-negative duration written in Go syntax ("500ms",
// "2s", "1m30s"; see time.ParseDuration) or as a whole number of
// milliseconds ("1500" is 1.5s). Spaces around s are ignored. It returns an
// error for an empty string, a negative duration, and a value too large for
// time.Duration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("kafkaevents: empty duration")
	}
	if isDigits(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("kafkaevents: duration %q: too many milliseconds", s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("kafkaevents: %w", err)
	}
	if d < 0 {
		return 0, fmt.Errorf("kafkaevents: duration %q is negative", s)
	}
	return d, nil
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
