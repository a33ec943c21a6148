package kafkaevents_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/torix/kafkaevents"
)

// fuzzedVariables are the variables FuzzFromLookup sets, by index. The two
// secrets are not among them: they keep the fixed values below, so the fuzzer
// checks that they never leak into an error or a printed Config. Neither are
// the TLS file paths, which Sarama reads: an arbitrary path could name a
// device that never ends.
var fuzzedVariables = []string{
	"KAFKA_CLIENT_ID", "KAFKA_BROKERS", "KAFKA_VERSION", "KAFKA_LOG_LEVEL",
	"KAFKA_SSL_ENABLED", "KAFKA_SSL_INSECURE_SKIP_VERIFY",
	"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
	"KAFKA_CONSUMER_GROUP", "KAFKA_SESSION_TIMEOUT", "KAFKA_HEARTBEAT_INTERVAL", "KAFKA_FETCH_MAX_WAIT",
	"KAFKA_REBALANCE_STRATEGY", "KAFKA_SHUTDOWN_TIMEOUT", "KAFKA_CONSUMER_COMMIT_INTERVAL",
	"KAFKA_PRODUCER_IDEMPOTENT", "KAFKA_PRODUCER_ACKS", "KAFKA_PRODUCER_COMPRESSION",
	"KAFKA_TOPICS", "KAFKA_FROM_BEGINNING",
	"KAFKA_RETRY_ENABLED", "KAFKA_RETRY_ATTEMPTS", "KAFKA_RETRY_BASE_DELAY", "KAFKA_RETRY_MAX_DELAY",
	"KAFKA_RETRY_BACKOFF", "KAFKA_RETRY_JITTER", "KAFKA_RETRY_TOPIC_MODE", "KAFKA_RETRY_PARTITIONS",
	"KAFKA_RETRY_REPLICATION_FACTOR", "KAFKA_RETRY_RETENTION", "KAFKA_RETRY_SEGMENT",
	"KAFKA_DLQ_ENABLED", "KAFKA_DLQ_PARTITIONS", "KAFKA_DLQ_REPLICATION_FACTOR", "KAFKA_DLQ_RETENTION",
	"KAFKA_DLQ_MAX_REPROCESS", "KAFKA_MONITORING_ENABLED", "KAFKA_REBALANCE_TIMEOUT",
}

const (
	fuzzPassword = "pw-Fuzz-S3cret-7d1e"
	fuzzToken    = "tok-Fuzz-S3cret-93ab"
)

// FuzzFromLookup reads a Config from up to four variables with arbitrary
// values next to a SASL password and an admin token. FromLookup never
// panics; when it fails, the error wraps ErrInvalidConfig and the Config
// comes back unchanged; Validate and Sarama never panic on what it returns;
// and neither secret appears in any error or in the Config printed with
// fmt. The seed corpus is testdata/fuzz/FuzzFromLookup.
func FuzzFromLookup(f *testing.F) {
	index := func(name string) uint8 {
		for i, v := range fuzzedVariables {
			if v == name {
				return uint8(i)
			}
		}
		panic(name)
	}
	f.Add(index("KAFKA_BROKERS"), "localhost:9092", index("KAFKA_SASL_MECHANISM"), "SCRAM-SHA-512", index("KAFKA_SASL_USERNAME"), "svc", index("KAFKA_RETRY_BASE_DELAY"), "1500")
	f.Add(index("KAFKA_RETRY_ATTEMPTS"), "three", index("KAFKA_RETRY_JITTER"), "NaN", index("KAFKA_SESSION_TIMEOUT"), "-1s", index("KAFKA_RETRY_PARTITIONS"), "99999999999")
	f.Add(index("KAFKA_BROKERS"), " , ,a:1,, ", index("KAFKA_VERSION"), "0.10.2.0", index("KAFKA_PRODUCER_COMPRESSION"), "zstd", index("KAFKA_REBALANCE_STRATEGY"), "cooperative-sticky")
	f.Add(index("KAFKA_SSL_ENABLED"), "YES", index("KAFKA_SASL_MECHANISM"), "plain", index("KAFKA_SSL_INSECURE_SKIP_VERIFY"), "maybe", index("KAFKA_CLIENT_ID"), "bad name!")
	f.Add(index("KAFKA_HEARTBEAT_INTERVAL"), "2562047h47m16.854775807s", index("KAFKA_FETCH_MAX_WAIT"), "9223372036855", index("KAFKA_SHUTDOWN_TIMEOUT"), "0", index("KAFKA_RETRY_MAX_DELAY"), "1ns")
	f.Add(index("KAFKA_SASL_USERNAME"), fuzzPassword[:8], index("KAFKA_LOG_LEVEL"), "\x00", index("KAFKA_TOPICS"), "a\xffb", index("KAFKA_DLQ_MAX_REPROCESS"), "-2147483649")
	f.Fuzz(func(t *testing.T, k1 uint8, v1 string, k2 uint8, v2 string, k3 uint8, v3 string, k4 uint8, v4 string) {
		vars := map[string]string{"KAFKA_SASL_PASSWORD": fuzzPassword, "KAFKA_ADMIN_TOKEN": fuzzToken}
		values := []string{v1, v2, v3, v4}
		for i, k := range []uint8{k1, k2, k3, k4} {
			vars[fuzzedVariables[int(k)%len(fuzzedVariables)]] = values[i]
		}
		// A fuzzed value holding a secret may be printed legitimately.
		checkLeaks := true
		for _, v := range values {
			if strings.Contains(v, fuzzPassword) || strings.Contains(v, fuzzToken) {
				checkLeaks = false
			}
		}
		leak := func(what, s string) {
			if checkLeaks && (strings.Contains(s, fuzzPassword) || strings.Contains(s, fuzzToken)) {
				t.Fatalf("%s shows a secret: %s", what, s)
			}
		}
		lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }

		in := kafkaevents.Config{ServiceName: "fuzz"}
		cfg, err := in.FromLookup(lookup)
		if err != nil {
			if !errors.Is(err, kafkaevents.ErrInvalidConfig) {
				t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
			}
			if !reflect.DeepEqual(cfg, in) {
				t.Fatalf("FromLookup failed but changed the config: %#v", cfg)
			}
			leak("the FromLookup error", err.Error())
			return
		}
		if cfg.SASL.Password != fuzzPassword || cfg.Monitoring.AdminToken != fuzzToken {
			t.Fatalf("secrets not read: %q %q", cfg.SASL.Password, cfg.Monitoring.AdminToken)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			leak("Config printed with "+verb, fmt.Sprintf(verb, cfg))
		}
		leak("SASLConfig printed", fmt.Sprintf("%+v %#v", cfg.SASL, cfg.SASL))
		if err := cfg.Validate(); err != nil {
			leak("the Validate error", err.Error())
		}
		if _, err := cfg.Sarama(); err != nil {
			if !errors.Is(err, kafkaevents.ErrInvalidConfig) {
				t.Fatalf("Sarama error does not wrap ErrInvalidConfig: %v", err)
			}
			leak("the Sarama error", err.Error())
		}
	})
}
