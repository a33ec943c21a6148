package kafkaevents

import (
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/torix/kafkaevents/delayedretry"
)

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
	defaultCommitInterval    = 100 * time.Millisecond
	defaultConcurrency       = 1
	defaultStartupTimeout    = 20 * time.Second
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
	defaultDeadLetteredKey   = "hold"
	defaultKeyOrderLimit     = 10_000
	defaultDLQPartitions     = 3
	defaultDLQReplication    = 1
	defaultDLQRetention      = 14 * 24 * time.Hour
	defaultDLQMaxReprocess   = 5
	defaultMonitoringPrefix  = "/kafka"
)

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

	setDefault(&c.StartupTimeout, defaultStartupTimeout)
	c.SASL.Mechanism = normEnum(c.SASL.Mechanism)

	cc := &c.Consumer
	if cc.GroupID == "" {
		cc.GroupID = c.ClientID + "-group"
	}
	cc.InstanceID = strings.TrimSpace(cc.InstanceID)
	setDefault(&cc.SessionTimeout, defaultSessionTimeout)
	if cc.HeartbeatInterval == 0 {
		// A third of the session timeout when that is shorter than 9s, as
		// Kafka recommends, so that setting SessionTimeout alone is valid.
		cc.HeartbeatInterval = min(defaultHeartbeatInterval, cc.SessionTimeout/3)
	}
	setDefault(&cc.FetchMinBytes, defaultFetchMinBytes)
	setDefault(&cc.FetchDefaultBytes, defaultFetchDefaultBytes)
	setDefault(&cc.MaxWaitTime, defaultMaxWaitTime)
	cc.RebalanceStrategy = normEnum(cc.RebalanceStrategy)
	setDefault(&cc.RebalanceStrategy, defaultRebalanceStrategy)
	setDefault(&cc.RebalanceTimeout, defaultRebalanceTimeout)
	setDefault(&cc.ShutdownTimeout, defaultShutdownTimeout)
	setDefault(&cc.CommitInterval, defaultCommitInterval)
	setDefault(&cc.Concurrency, defaultConcurrency)

	p := &c.Producer
	if p.Idempotent == nil {
		p.Idempotent = Bool(false)
	}
	if p.ExactlyOnceHandoffs == nil {
		p.ExactlyOnceHandoffs = Bool(c.ExactlyOnce())
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
	setDefault(&r.MaxDelay, defaultRetryMaxDelay)
	if r.BaseDelay == 0 {
		// Never above the cap, so that setting MaxDelay alone is valid.
		r.BaseDelay = min(defaultRetryBaseDelay, r.MaxDelay)
	}
	r.Backoff = normEnum(r.Backoff)
	setDefault(&r.Backoff, defaultRetryBackoff)
	r.TopicMode = normEnum(r.TopicMode)
	setDefault(&r.TopicMode, defaultRetryTopicMode)
	setDefault(&r.Partitions, defaultRetryPartitions)
	setDefault(&r.ReplicationFactor, defaultRetryReplication)
	setDefault(&r.Retention, defaultRetryRetention)
	setDefault(&r.Segment, defaultRetrySegment)
	r.DeadLetteredKey = normEnum(r.DeadLetteredKey)
	setDefault(&r.DeadLetteredKey, defaultDeadLetteredKey)
	setDefault(&r.KeyOrderLimit, defaultKeyOrderLimit)

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
	if m.UI == nil {
		m.UI = Bool(true)
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

// MonitoringUIEnabled reports whether the operator console is on: the
// monitoring endpoints are on and Monitoring.UI is unset or true.
func (c Config) MonitoringUIEnabled() bool {
	return c.MonitoringEnabled() && boolOr(c.Monitoring.UI, true)
}

// FromBeginning reports whether a group without committed offsets starts at
// the oldest record; unset means false.
func (c Config) FromBeginning() bool { return boolOr(c.Subscriptions.FromBeginning, false) }

// Idempotent reports whether the producers are idempotent; unset means false.
func (c Config) Idempotent() bool { return boolOr(c.Producer.Idempotent, false) }

// ExactlyOnce reports whether the hand-offs are exactly once
// (Producer.ExactlyOnceHandoffs); unset means true unless Version is older
// than 2.5.0, where the brokers do not fence zombie members in transactions.
func (c Config) ExactlyOnce() bool {
	if c.Producer.ExactlyOnceHandoffs != nil {
		return *c.Producer.ExactlyOnceHandoffs
	}
	ver, err := sarama.ParseKafkaVersion(strings.TrimSpace(c.Version))
	return err != nil || ver.IsAtLeast(exactlyOnceMinKafka)
}

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

// retryPolicy is the global retry policy that Retry describes.
func (c Config) retryPolicy() delayedretry.Policy {
	return delayedretry.Policy{
		Attempts:  c.Retry.Attempts,
		BaseDelay: c.Retry.BaseDelay,
		MaxDelay:  c.Retry.MaxDelay,
		Backoff:   delayedretry.Backoff(c.Retry.Backoff),
		Jitter:    c.Retry.Jitter,

		KeepKeyOrder:    c.Retry.KeepKeyOrder,
		DeadLetteredKey: delayedretry.KeyAction(c.Retry.DeadLetteredKey),
	}
}
