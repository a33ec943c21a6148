package kafkaevents

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
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
	allowedDeadLetteredKeys  = []string{"hold", "release"}
)

// The Kafka versions that Validate requires: overall, and for the features
// that sarama refuses on older brokers.
var (
	minSupportedKafkaVersion  = sarama.V1_0_0_0
	cooperativeStickyMinKafka = sarama.V2_4_0_0
	zstdMinKafka              = sarama.V2_1_0_0
	exactlyOnceMinKafka       = sarama.V2_5_0_0
	staticMembershipMinKafka  = sarama.V2_3_0_0
)

// maxInstanceIDLen bounds Consumer.InstanceID, so that the member IDs
// derived from it ({InstanceID}.{topic}, see memberInstanceID) keep room
// for a part of the topic's name within Kafka's 249 characters.
const maxInstanceIDLen = 200

// minCommitInterval is the shortest Consumer.CommitInterval: below it the
// commits of a busy group would load the coordinator for no gain.
const minCommitInterval = 10 * time.Millisecond

// validTopicName matches what Kafka accepts in a topic name.
var validTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// Validate reports every problem of a config on which [Config.SetDefaults]
// has run. It returns nil for a valid config, and otherwise one error that
// joins (errors.Join) [ErrInvalidConfig] with one line per problem; each
// line names the field by its Go path (such as Retry.Backoff), the bad value
// and what is allowed, plus the environment variable that sets the field.
// The values of SASL.Password and Monitoring.AdminToken never appear.
//
// A problem that only follows from another one is left out, as fixing the
// other one is what is needed and may make it moot: an unknown
// SASL.Mechanism is reported without the credentials a mechanism needs, an
// unknown Producer.RequiredAcks without what Producer.Idempotent asks of it,
// and a Version that is out of range without what cooperative-sticky
// rebalancing or zstd compression needs of it.
//
// When TLS is enabled (see [Config.TLSEnabled]) Validate also reads and
// parses TLS.CAFile, TLS.CertFile and TLS.KeyFile.
func (c Config) Validate() error {
	problems := c.check()
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p.err
	}
	return errors.Join(append([]error{ErrInvalidConfig}, c.redactErrs(errs)...)...)
}

// check returns the problems of c that Validate reports, unredacted.
func (c Config) check() []problem {
	var v validator
	c.validateTop(&v)
	c.validateSecurity(&v)
	c.validateConsumer(&v)
	c.validateProducer(&v)
	c.validateRetry(&v)
	c.validateDLQ(&v)
	c.validateMonitoring(&v)
	return v.problems
}

// problem is one line of a Validate error.
type problem struct {
	// fields are the Go paths in Config of the field the problem is about,
	// such as "Brokers[2]", then of the fields it compares that one with,
	// whose values it depends on (see Config.FromLookup).
	fields []string
	err    error
}

// involves reports whether one of the fields of p is in set, a set of Go
// paths without index (such as "Brokers").
func (p problem) involves(set map[string]bool) bool {
	for _, f := range p.fields {
		if set[fieldPath(f)] {
			return true
		}
	}
	return false
}

// fieldPath returns field, a Go path in Config such as "Brokers[2]",
// without its index.
func fieldPath(field string) string {
	field, _, _ = strings.Cut(field, "[")
	return field
}

// validator collects the problems Validate finds.
type validator struct{ problems []problem }

// add records a problem with field: format and args say what follows the
// field name. The variable that sets the field, if any (see envFor), is
// named at the end.
func (v *validator) add(field, format string, args ...any) {
	v.addAgainst(field, nil, format, args...)
}

// addAgainst is add for a problem of field that compares it with the fields
// against, which the message names.
func (v *validator) addAgainst(field string, against []string, format string, args ...any) {
	msg := field + " " + fmt.Sprintf(format, args...)
	if env := envFor(field); env != "" {
		msg += " (env " + env + ")"
	}
	v.problems = append(v.problems, problem{fields: append([]string{field}, against...), err: errors.New(msg)})
}

// has reports whether a problem with field (a Go path such as
// "SASL.Mechanism") is recorded already, so that the checks that take its
// value for granted can be skipped.
func (v *validator) has(field string) bool {
	for _, p := range v.problems {
		if fieldPath(p.fields[0]) == field {
			return true
		}
	}
	return false
}

// oneOf records a problem when value is not in allowed.
func (v *validator) oneOf(field, value string, allowed []string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(field, "= %q: want one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.add(field, "= %s: want a duration > 0", d)
	}
}

func (v *validator) notNegative(field string, n int64) {
	if n < 0 {
		v.add(field, "= %d: want a whole number >= 0", n)
	}
}

func (c Config) validateTop(v *validator) {
	if len(c.Brokers) == 0 {
		v.add("Brokers", "is empty: want at least one host:port")
	}
	for i, b := range c.Brokers {
		if strings.ContainsAny(b, "; ") {
			v.add(fmt.Sprintf("Brokers[%d]", i), "= %q: the broker list is comma-separated, such as \"kafka-1:9092,kafka-2:9092\"", b)
			continue
		}
		if err := checkHostPort(b); err != nil {
			// An address may hold a password ("user:secret@host:9092"):
			// neither it nor the parser's error may echo it.
			v.add(fmt.Sprintf("Brokers[%d]", i), "= %q: want host:port, such as \"localhost:9092\" (%s)", redactBroker(b), redactIn(err.Error(), []string{b}))
		}
	}
	if !validTopicName.MatchString(c.ServiceName) {
		v.addAgainst("ServiceName", []string{"ClientID"}, "= %q: want letters, digits, '.', '_' and '-' only, as it prefixes topic names (it defaults to ClientID)", c.ServiceName)
	}
	if ver, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		v.add("Version", "= %q: want a Kafka version such as \"2.8.0\"", c.Version)
	} else if !ver.IsAtLeast(minSupportedKafkaVersion) || !sarama.MaxVersion.IsAtLeast(ver) {
		v.add("Version", "= %q: want a version from %s to %s", c.Version, minSupportedKafkaVersion, sarama.MaxVersion)
	}
	v.oneOf("LogLevel", normEnum(c.LogLevel), allowedLogLevels)
	for i, t := range c.Subscriptions.Topics {
		if !validTopicName.MatchString(t) || t == "." || t == ".." || len(t) > 249 {
			v.add(fmt.Sprintf("Subscriptions.Topics[%d]", i), "= %q: want a topic name of at most 249 letters, digits, '.', '_' and '-'", t)
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
	switch {
	case mech != "" && !slices.Contains(allowedSASLMechanisms, mech):
		// Not a word about the credentials: what an unknown mechanism
		// needs is unknown too.
		v.oneOf("SASL.Mechanism", mech, allowedSASLMechanisms)
	case mech != "":
		if s.Username == "" {
			v.addAgainst("SASL.Username", []string{"SASL.Mechanism"}, "is empty: want a username when SASL.Mechanism is %q", mech)
		}
		if s.Password == "" {
			v.addAgainst("SASL.Password", []string{"SASL.Mechanism"}, "is empty: want a password when SASL.Mechanism is %q", mech)
		}
	case s.Username != "" || s.Password != "":
		v.addAgainst("SASL.Mechanism", []string{"SASL.Username", "SASL.Password"},
			"is empty but SASL.Username or SASL.Password is set: want one of %s", strings.Join(allowedSASLMechanisms, ", "))
	}

	if !c.TLSEnabled() {
		return
	}
	t := c.TLS
	if t.CAFile != "" {
		if _, err := loadCAPool(t.CAFile); err != nil {
			v.add("TLS.CAFile", "= %q: want a readable PEM file of CA certificates: %v", t.CAFile, err)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.addAgainst("TLS.KeyFile", []string{"TLS.CertFile"}, "is empty but TLS.CertFile is set: want both or neither")
	case t.CertFile == "" && t.KeyFile != "":
		v.addAgainst("TLS.CertFile", []string{"TLS.KeyFile"}, "is empty but TLS.KeyFile is set: want both or neither")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			// The key's path is not shown: it says where a secret lives.
			v.addAgainst("TLS.CertFile", []string{"TLS.KeyFile"}, "= %q with TLS.KeyFile = %s: want a readable PEM certificate and its matching private key: %s",
				t.CertFile, redacted, redactSecrets(err.Error(), t.KeyFile))
		}
	}
}

func (c Config) validateConsumer(v *validator) {
	cc := c.Consumer
	if cc.GroupID == "" {
		v.add("Consumer.GroupID", "is empty: want a consumer group name")
	}
	if id := cc.InstanceID; id != "" {
		if !validTopicName.MatchString(id) || id == "." || id == ".." || len(id) > maxInstanceIDLen {
			v.add("Consumer.InstanceID", "= %q: want at most %d letters, digits, '.', '_' and '-' (not \".\" or \"..\"), such as the pod name \"orders-0\"", id, maxInstanceIDLen)
		}
		if ver, err := sarama.ParseKafkaVersion(c.Version); err == nil && !v.has("Version") && !ver.IsAtLeast(staticMembershipMinKafka) {
			v.addAgainst("Consumer.InstanceID", []string{"Version"}, "= %q needs Version %s or newer for static membership, got %q", id, staticMembershipMinKafka, c.Version)
		}
	}
	v.positive("Consumer.SessionTimeout", cc.SessionTimeout)
	v.positive("Consumer.HeartbeatInterval", cc.HeartbeatInterval)
	if cc.SessionTimeout > 0 && cc.HeartbeatInterval >= cc.SessionTimeout {
		v.addAgainst("Consumer.HeartbeatInterval", []string{"Consumer.SessionTimeout"}, "= %s: want less than Consumer.SessionTimeout (%s)",
			cc.HeartbeatInterval, cc.SessionTimeout)
	}
	if cc.FetchMinBytes <= 0 {
		v.add("Consumer.FetchMinBytes", "= %d: want a number of bytes > 0", cc.FetchMinBytes)
	}
	if cc.FetchDefaultBytes <= 0 {
		v.add("Consumer.FetchDefaultBytes", "= %d: want a number of bytes > 0", cc.FetchDefaultBytes)
	}
	if cc.FetchMaxBytes < 0 {
		v.add("Consumer.FetchMaxBytes", "= %d: want a number of bytes >= 0 (0 means no limit)", cc.FetchMaxBytes)
	}
	if cc.MaxWaitTime < time.Millisecond {
		v.add("Consumer.MaxWaitTime", "= %s: want a duration of at least 1ms", cc.MaxWaitTime)
	}
	strategy := normEnum(cc.RebalanceStrategy)
	v.oneOf("Consumer.RebalanceStrategy", strategy, allowedRebalanceStrategy)
	if ver, err := sarama.ParseKafkaVersion(c.Version); strategy == "cooperative-sticky" && err == nil && !v.has("Version") && !ver.IsAtLeast(cooperativeStickyMinKafka) {
		v.addAgainst("Consumer.RebalanceStrategy", []string{"Version"}, "= %q needs Version %s or newer, got %q", strategy, cooperativeStickyMinKafka, c.Version)
	}
	v.positive("Consumer.RebalanceTimeout", cc.RebalanceTimeout)
	v.positive("StartupTimeout", c.StartupTimeout)
	if cc.ShutdownTimeout < 0 {
		v.add("Consumer.ShutdownTimeout", "= %s: want a duration >= 0", cc.ShutdownTimeout)
	}
	if cc.CommitInterval < minCommitInterval {
		v.add("Consumer.CommitInterval", "= %s: want a duration of at least %s", cc.CommitInterval, minCommitInterval)
	}
	if cc.Concurrency < 1 || cc.Concurrency > MaxConcurrency {
		v.add("Consumer.Concurrency", "= %d: want 1 to %d records of a partition in flight", cc.Concurrency, MaxConcurrency)
	}
}

func (c Config) validateProducer(v *validator) {
	p := c.Producer
	if p.MaxInFlightRequests < 1 {
		v.add("Producer.MaxInFlightRequests", "= %d: want a number >= 1", p.MaxInFlightRequests)
	}
	if (p.Linger < 0 && p.Linger != NoLinger) || p.Linger > maxLinger {
		v.add("Producer.Linger", "= %s: want a duration from 0 to %s, or NoLinger", p.Linger, maxLinger)
	}
	acks := normAcks(p.RequiredAcks)
	v.oneOf("Producer.RequiredAcks", acks, allowedRequiredAcks)
	compression := normEnum(p.Compression)
	v.oneOf("Producer.Compression", compression, allowedCompressions)
	if ver, err := sarama.ParseKafkaVersion(c.Version); compression == "zstd" && err == nil && !v.has("Version") && !ver.IsAtLeast(zstdMinKafka) {
		v.addAgainst("Producer.Compression", []string{"Version"}, "= %q needs Version %s or newer, got %q", compression, zstdMinKafka, c.Version)
	}
	if ver, err := sarama.ParseKafkaVersion(c.Version); boolOr(p.ExactlyOnceHandoffs, false) && err == nil && !v.has("Version") && !ver.IsAtLeast(exactlyOnceMinKafka) {
		v.addAgainst("Producer.ExactlyOnceHandoffs", []string{"Version"}, "= true needs Version %s or newer (its transactions fence zombie group members), got %q", exactlyOnceMinKafka, c.Version)
	}
	if c.Idempotent() {
		if acks != "all" && !v.has("Producer.RequiredAcks") {
			v.addAgainst("Producer.RequiredAcks", []string{"Producer.Idempotent"}, "= %q: want \"all\" when Producer.Idempotent is true", p.RequiredAcks)
		}
		if p.MaxInFlightRequests > 1 {
			v.addAgainst("Producer.MaxInFlightRequests", []string{"Producer.Idempotent"}, "= %d: want 1 when Producer.Idempotent is true", p.MaxInFlightRequests)
		}
	}
}

func (c Config) validateRetry(v *validator) {
	r := c.Retry
	v.notNegative("Retry.Attempts", int64(r.Attempts))
	v.positive("Retry.BaseDelay", r.BaseDelay)
	v.positive("Retry.MaxDelay", r.MaxDelay)
	if r.BaseDelay > r.MaxDelay && r.MaxDelay > 0 {
		v.addAgainst("Retry.BaseDelay", []string{"Retry.MaxDelay"}, "= %s: want at most Retry.MaxDelay (%s)", r.BaseDelay, r.MaxDelay)
	}
	v.oneOf("Retry.Backoff", normEnum(r.Backoff), allowedRetryBackoffs)
	if !(r.Jitter >= 0 && r.Jitter <= 1) { // also catches NaN
		v.add("Retry.Jitter", "= %v: want a fraction from 0 to 1", r.Jitter)
	}
	v.oneOf("Retry.TopicMode", normEnum(r.TopicMode), allowedRetryTopicModes)
	v.notNegative("Retry.Partitions", int64(r.Partitions))
	v.notNegative("Retry.ReplicationFactor", int64(r.ReplicationFactor))
	if v.has("Retry.MaxDelay") {
		// Not compared with a cap that is invalid itself.
		v.positive("Retry.Retention", r.Retention)
	} else if r.Retention <= r.MaxDelay {
		v.addAgainst("Retry.Retention", []string{"Retry.MaxDelay"}, "= %s: want more than Retry.MaxDelay (%s)", r.Retention, r.MaxDelay)
	}
	v.positive("Retry.Segment", r.Segment)
	v.oneOf("Retry.DeadLetteredKey", normEnum(r.DeadLetteredKey), allowedDeadLetteredKeys)
	v.notNegative("Retry.KeyOrderLimit", int64(r.KeyOrderLimit))
}

func (c Config) validateDLQ(v *validator) {
	d := c.DLQ
	v.notNegative("DLQ.Partitions", int64(d.Partitions))
	v.notNegative("DLQ.ReplicationFactor", int64(d.ReplicationFactor))
	v.positive("DLQ.Retention", d.Retention)
	v.notNegative("DLQ.MaxReprocess", int64(d.MaxReprocess))
}

func (c Config) validateMonitoring(v *validator) {
	p := c.Monitoring.Prefix
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		v.add("Monitoring.Prefix", "= %q: want a path that starts with '/' and does not end with one, such as \"/kafka\"", p)
	}
	if u := c.Monitoring.TraceURL; u != "" && !strings.Contains(u, "{traceId}") {
		v.add("Monitoring.TraceURL", "= %q: want a URL that contains {traceId}, such as \"https://jaeger.example/trace/{traceId}\"", u)
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
