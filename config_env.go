package kafkaevents

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// configFields lists every field of Config with the KAFKA_* variable that
// sets it, if any, in the order FromLookup reads them (and so the order of
// its error lines). It is where a variable is declared, once: FromLookup
// reads the variables it names, Validate names them in its errors through
// envFor, and the table of docs/configuration.md is generated from it (def
// and doc are the Default and Notes columns, in Markdown; docs_test.go
// fails when the page is out of date).
var configFields = []configField{
	{env: "KAFKA_CLIENT_ID", field: "ClientID", def: "`kafkaevents`", doc: "client.id the brokers see"},
	{
		env: "KAFKA_BROKERS", field: "Brokers", def: "**required**",
		doc: "`host:port`, comma-separated in the variable",
	},
	{
		field: "ServiceName", def: "`ClientID`",
		doc: "prefixes `{service}.retry…` and `{service}.dlq`; letters, digits, `.`, `_`, `-`",
	},
	{
		env: "KAFKA_VERSION", field: "Version", def: "`2.8.0`",
		doc: "protocol version sarama speaks, 1.0.0 to 4.3.1; cooperative-sticky rebalancing needs 2.4.0 or newer, zstd compression 2.1.0 or newer",
	},
	{
		env: "KAFKA_LOG_LEVEL", field: "LogLevel", def: "`info`",
		doc: "`debug`, `info`, `warn`, `error`; used by the default logger",
	},
	{
		env: "KAFKA_SSL_ENABLED", field: "TLS.Enabled", def: "automatic",
		doc: "nil: on exactly when `SASL.Mechanism` is set; an explicit `false` always wins",
	},
	{env: "KAFKA_SSL_CA_FILE", field: "TLS.CAFile", def: "system roots", doc: "PEM"},
	{env: "KAFKA_SSL_CERT_FILE", field: "TLS.CertFile", doc: "mutual TLS; needs `TLS.KeyFile`"},
	{
		env: "KAFKA_SSL_KEY_FILE", field: "TLS.KeyFile",
		doc: "private key of `TLS.CertFile`; needs `TLS.CertFile`; its path is never printed",
	},
	{
		env: "KAFKA_SSL_INSECURE_SKIP_VERIFY", field: "TLS.InsecureSkipVerify", def: "`false`",
		doc: "development only",
	},
	{field: "TLS.ServerName", def: "host of the broker address"},
	{
		env: "KAFKA_SASL_MECHANISM", field: "SASL.Mechanism", def: "none",
		doc: "`plain`, `scram-sha-256`, `scram-sha-512`",
	},
	{env: "KAFKA_SASL_USERNAME", field: "SASL.Username", doc: "required with a mechanism"},
	{env: "KAFKA_SASL_PASSWORD", field: "SASL.Password", doc: "required with a mechanism; never printed"},
	{env: "KAFKA_CONSUMER_GROUP", field: "Consumer.GroupID", def: "`{ClientID}-group`"},
	{
		env: "KAFKA_CONSUMER_INSTANCE_ID", field: "Consumer.InstanceID", def: "empty (dynamic membership)",
		doc: "static membership (`group.instance.id`, Kafka 2.3+): a member restarted with the same ID within the session timeout gets its partitions back without a rebalance; each member gets `{InstanceID}.{topic}` or `{InstanceID}.retry`; at most 200 letters, digits, `.`, `_`, `-`; the pod name of a StatefulSet (see [Static membership](operations.md#static-membership))",
	},
	{env: "KAFKA_SESSION_TIMEOUT", field: "Consumer.SessionTimeout", def: "`30s`"},
	{
		env: "KAFKA_HEARTBEAT_INTERVAL", field: "Consumer.HeartbeatInterval", def: "`3s`, or a third of the session timeout when shorter",
		doc: "less than the session timeout",
	},
	{
		field: "Consumer.FetchMinBytes", def: "`1`",
		doc: "the retry consumer waits for at least 64 KiB (see [Architecture](architecture.md#retry-records-are-read-in-batches))",
	},
	{field: "Consumer.FetchDefaultBytes", def: "1 MiB", doc: "per partition"},
	{field: "Consumer.FetchMaxBytes", def: "`0` (no limit)", doc: "a larger record cannot be consumed"},
	{
		env: "KAFKA_FETCH_MAX_WAIT", field: "Consumer.MaxWaitTime", def: "`250ms`",
		doc: "at least 1 ms; the retry consumer waits at most a quarter of the shortest retry delay",
	},
	{
		env: "KAFKA_REBALANCE_STRATEGY", field: "Consumer.RebalanceStrategy", def: "`range`",
		doc: "`roundrobin`, `sticky`, `cooperative-sticky` (Kafka 2.4+)",
	},
	{
		env: "KAFKA_REBALANCE_TIMEOUT", field: "Consumer.RebalanceTimeout", def: "`60s`",
		doc: "how long a rebalance waits for members to rejoin (a crashed member holds it this long); the client read timeout is raised to at least this + 5s",
	},
	{
		env: "KAFKA_SHUTDOWN_TIMEOUT", field: "Consumer.ShutdownTimeout", def: "`30s`",
		doc: "bounds the wait for stuck handlers at a stop (an idle service stops at once); pass it to `RouterConfig.CloseTimeout`",
	},
	{
		env: "KAFKA_CONSUMER_COMMIT_INTERVAL", field: "Consumer.CommitInterval", def: "`100ms`",
		doc: "how often settled offsets are committed, at least `10ms`; a crash handles again at most the records settled in one interval; 100 ms cut crash duplicates 8 to 11 times against sarama's 1 s ([figures](../RELIABILITY.md#the-commit-interval-and-duplicates))",
	},
	{
		env: "KAFKA_CONSUMER_CONCURRENCY", field: "Consumer.Concurrency", def: "`1`",
		doc: "records of one partition each handler may handle at once, 1 to 512; per handler with `WithConcurrency`; see [Concurrency within a partition](concurrency.md)",
	},
	{
		env: "KAFKA_STARTUP_TIMEOUT", field: "StartupTimeout", def: "`20s`",
		doc: "bounds connecting to the brokers in `New`, and creating the topics and connecting the retry consumer at router start; the error names the brokers and the likely cause",
	},
	{
		env: "KAFKA_PRODUCER_IDEMPOTENT", field: "Producer.Idempotent", def: "`false`",
		doc: "needs acks `all` and 1 request in flight",
	},
	{field: "Producer.MaxInFlightRequests", def: "`5` (`1` when idempotent)"},
	{
		env: "KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS", field: "Producer.ExactlyOnceHandoffs", def: "`true` (`false` when `Version` is below `2.5.0`)",
		doc: "each retry or DLQ record and the commit past its original in one transaction; needs transactions allowed on the brokers (turn it off where they are not); see [Exactly-once hand-offs](exactly-once.md)",
	},
	{
		env: "KAFKA_PRODUCER_ACKS", field: "Producer.RequiredAcks", def: "`all`",
		doc: "`all`/`-1`, `leader`/`1`, `none`/`0`",
	},
	{
		env: "KAFKA_PRODUCER_COMPRESSION", field: "Producer.Compression", def: "`none`",
		doc: "`gzip`, `snappy`, `lz4`, `zstd` (Kafka 2.1+)",
	},
	{
		env: "KAFKA_PRODUCER_LINGER", field: "Producer.Linger", read: readLinger, def: "`5ms`",
		doc: "see [Producer linger](#producer-linger) below; `NoLinger` (variable `0`) sends each record at once; at most `1s`",
	},
	{
		env: "KAFKA_TOPICS", field: "Subscriptions.Topics",
		doc: "validated and kept in `stack.Config()`; the stack subscribes to the topics of the handlers you register",
	},
	{
		env: "KAFKA_FROM_BEGINNING", field: "Subscriptions.FromBeginning", def: "`false`",
		doc: "a group without committed offsets starts at the oldest record instead of the newest; the retry consumer group always starts at the oldest",
	},
	{
		env: "KAFKA_RETRY_ENABLED", field: "Retry.Enabled", def: "`true`",
		doc: "off: failures go straight to the DLQ",
	},
	{env: "KAFKA_RETRY_ATTEMPTS", field: "Retry.Attempts", def: "`3`", doc: "retries after the first delivery"},
	{
		env: "KAFKA_RETRY_BASE_DELAY", field: "Retry.BaseDelay", read: readRetryDelay, def: "`1s`, or the max delay when shorter",
		doc: "delay of the first retry",
	},
	{env: "KAFKA_RETRY_MAX_DELAY", field: "Retry.MaxDelay", read: readRetryDelay, def: "`30s`", doc: "cap"},
	{
		env: "KAFKA_RETRY_BACKOFF", field: "Retry.Backoff", def: "`exponential`",
		doc: "doubles per attempt; `linear` adds `BaseDelay`",
	},
	{env: "KAFKA_RETRY_JITTER", field: "Retry.Jitter", def: "`0`", doc: "0 to 1; only ever lengthens a delay"},
	{
		env: "KAFKA_RETRY_TOPIC_MODE", field: "Retry.TopicMode", def: "`lanes`",
		doc: "`single`: one `{service}.retry` topic",
	},
	{env: "KAFKA_RETRY_PARTITIONS", field: "Retry.Partitions", def: "`3`", doc: "of each retry topic created"},
	{
		env: "KAFKA_RETRY_REPLICATION_FACTOR", field: "Retry.ReplicationFactor", def: "`1`",
		doc: "set 3 on a production cluster",
	},
	{
		env: "KAFKA_RETRY_RETENTION", field: "Retry.Retention", def: "`168h` (7 days)",
		doc: "`retention.ms`; more than `MaxDelay`",
	},
	{env: "KAFKA_RETRY_SEGMENT", field: "Retry.Segment", def: "`1h`", doc: "`segment.ms`"},
	{
		env: "KAFKA_RETRY_KEEP_KEY_ORDER", field: "Retry.KeepKeyOrder", def: "`false`",
		doc: "a failed record's key waits for it: see [docs/key-order.md](key-order.md)",
	},
	{
		env: "KAFKA_RETRY_DEAD_LETTERED_KEY", field: "Retry.DeadLetteredKey", def: "`hold`",
		doc: "`release`: a dead-lettered head lets its key go on",
	},
	{
		env: "KAFKA_RETRY_KEY_ORDER_LIMIT", field: "Retry.KeyOrderLimit", def: "`10000`",
		doc: "parked records per partition; past it the partition waits",
	},
	{
		env: "KAFKA_DLQ_ENABLED", field: "DLQ.Enabled", def: "`true`",
		doc: "off: a failure that would go to the DLQ is redelivered over and over and holds its partition (see [Troubleshooting](troubleshooting.md))",
	},
	{env: "KAFKA_DLQ_PARTITIONS", field: "DLQ.Partitions", def: "`3`"},
	{
		env: "KAFKA_DLQ_REPLICATION_FACTOR", field: "DLQ.ReplicationFactor", def: "`1`",
		doc: "set 3 on a production cluster",
	},
	{env: "KAFKA_DLQ_RETENTION", field: "DLQ.Retention", def: "`336h` (14 days)"},
	{
		env: "KAFKA_DLQ_MAX_REPROCESS", field: "DLQ.MaxReprocess", def: "`5`",
		doc: "reprocess runs a record may go through before it is parked",
	},
	{
		env: "KAFKA_MONITORING_ENABLED", field: "Monitoring.Enabled", def: "`true`",
		doc: "read by the application when it mounts `health`",
	},
	{
		env: "KAFKA_MONITORING_UI", field: "Monitoring.UI", def: "`true`",
		doc: "the operator console at `{prefix}/ui/` (see [Operations](operations.md#operator-console)); served only when monitoring is on",
	},
	{
		env: "KAFKA_MONITORING_TRACE_URL", field: "Monitoring.TraceURL", def: "empty",
		doc: "the console links each DLQ record to its trace: `{traceId}` is replaced, e.g. `https://jaeger.example/trace/{traceId}`",
	},
	{
		env: "KAFKA_ADMIN_TOKEN", field: "Monitoring.AdminToken", def: "empty",
		doc: "empty: admin endpoints answer 403; never printed",
	},
	{field: "Monitoring.Prefix", def: "`/kafka`"},
}

// configField is one row of configFields.
type configField struct {
	// env is the variable that sets the field; "" when only code sets it.
	env string
	// field is the field's Go path in Config, such as
	// "Consumer.CommitInterval".
	field string
	// read parses the variable into the field; nil picks the reader by the
	// field's type (see readByType).
	read envRead
	// def and doc are the Default and Notes of the field's row in
	// docs/configuration.md.
	def, doc string
}

// envRead fills dst, a pointer to a field of Config, from the variable name
// unless the field is already set.
type envRead func(e *envReader, name string, dst any)

// envFor returns the variable that sets field, a Go path in Config such as
// "Retry.Backoff" or "Brokers[2]" (the index is ignored), and "" when no
// variable sets it.
func envFor(field string) string {
	field = fieldPath(field)
	for _, f := range configFields {
		if f.field == field {
			return f.env
		}
	}
	return ""
}

// envStartupTimeout names the variable of StartupTimeout in the error of a
// start that timed out.
var envStartupTimeout = envFor("StartupTimeout")

// fieldAddr returns a pointer to the field of c at path, such as
// "Consumer.CommitInterval". It panics on a path that names no field: the
// paths are those of configFields, which the tests resolve.
func fieldAddr(c *Config, path string) any {
	v := reflect.ValueOf(c).Elem()
	for name := range strings.SplitSeq(path, ".") {
		v = v.FieldByName(name)
		if !v.IsValid() {
			panic("kafkaevents: configFields names no field " + path)
		}
	}
	return v.Addr().Interface()
}

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
// number`. FromLookup then returns c unchanged and one error that joins
// [ErrInvalidConfig] with one line per problem: every variable that does not
// parse, and what [Config.Validate] (after [Config.SetDefaults]) finds wrong
// with the variables that did, in the order of the table in
// docs/configuration.md. Left out are the problems that only follow from a
// value that does not parse (a KAFKA_HEARTBEAT_INTERVAL compared with the
// default of a KAFKA_SESSION_TIMEOUT that did not parse) and those of fields
// no variable set, which the caller may still set before [New] validates
// the whole config (such as Brokers when KAFKA_BROKERS is unset). When every
// variable parses, FromLookup returns no error: values that parse but are
// not allowed, such as an unknown KAFKA_SASL_MECHANISM, are for Validate to
// report.
func (c Config) FromLookup(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		return c, nil
	}
	orig := c
	e := envReader{lookup: lookup}
	var bad []problem
	read, failed := map[string]bool{}, map[string]bool{}
	for _, f := range configFields {
		if f.env == "" {
			continue
		}
		readField := f.read
		if readField == nil {
			readField = readByType
		}
		dst := fieldAddr(&c, f.field)
		unset := reflect.ValueOf(dst).Elem().IsZero()
		n := len(e.problems)
		readField(&e, f.env, dst)
		switch {
		case len(e.problems) > n:
			failed[f.field] = true
			for _, err := range e.problems[n:] {
				bad = append(bad, problem{fields: []string{f.field}, err: err})
			}
		case unset && !reflect.ValueOf(dst).Elem().IsZero():
			read[f.field] = true
		}
	}
	if len(bad) == 0 {
		return c, nil
	}

	checked := c
	checked.SetDefaults()
	for _, p := range checked.check() {
		if p.involves(read) && !p.involves(failed) {
			bad = append(bad, p)
		}
	}
	slices.SortStableFunc(bad, func(a, b problem) int {
		return cmp.Compare(fieldIndex(a.fields[0]), fieldIndex(b.fields[0]))
	})
	errs := make([]error, len(bad))
	for i, p := range bad {
		errs[i] = p.err
	}
	return orig, errors.Join(append([]error{ErrInvalidConfig}, c.redactErrs(errs)...)...)
}

// fieldIndex returns the index in configFields of field, a Go path such as
// "Brokers[2]" (the index is ignored), and len(configFields) for a field the
// table does not list.
func fieldIndex(field string) int {
	field = fieldPath(field)
	for i, f := range configFields {
		if f.field == field {
			return i
		}
	}
	return len(configFields)
}

// readByType is the envRead of a field by its type: strings as they are,
// lists split on commas, booleans, durations, whole numbers and fractions.
// It panics on a type it has no reader for: the tests read every field of
// configFields.
func readByType(e *envReader, name string, dst any) {
	switch dst := dst.(type) {
	case *string:
		e.str(name, dst)
	case *[]string:
		e.list(name, dst)
	case **bool:
		e.boolPtr(name, dst)
	case *bool:
		e.boolVal(name, dst)
	case *time.Duration:
		e.duration(name, dst)
	case *int:
		envInt(e, name, dst)
	case *int16:
		envInt(e, name, dst)
	case *int32:
		envInt(e, name, dst)
	case *float64:
		e.fraction(name, dst)
	default:
		panic(fmt.Sprintf("kafkaevents: no reader for %s, a %T", name, dst))
	}
}

// readRetryDelay reads a retry delay, refusing a bare number below
// minBareRetryDelay (see envReader.retryDelay).
func readRetryDelay(e *envReader, name string, dst any) {
	e.retryDelay(name, dst.(*time.Duration))
}

// readLinger reads Producer.Linger, where 0 means NoLinger.
func readLinger(e *envReader, name string, dst any) {
	e.durationAsZero(name, dst.(*time.Duration), NoLinger, "a duration such as 1ms or 5ms, or 0 to send every record at once")
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
