package kafkaevents_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

func TestEnvDurationSyntax(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{name: "milliseconds in Go syntax", value: "500ms", want: 500 * time.Millisecond},
		{name: "seconds", value: "2s", want: 2 * time.Second},
		{name: "compound", value: "1m30s", want: 90 * time.Second},
		{name: "bare milliseconds", value: "1500", want: 1500 * time.Millisecond},
		{name: "fraction", value: "1.5h", want: 90 * time.Minute},
		{name: "spaces around", value: "  2s ", want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := kafkaevents.Config{}.FromLookup(cfgLookup(map[string]string{"KAFKA_RETRY_BASE_DELAY": tt.value}))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.Retry.BaseDelay)
		})
	}
}

func TestEnvBoolSyntax(t *testing.T) {
	t.Parallel()

	tests := []struct {
		value string
		want  bool
	}{
		{"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"Yes", true}, {"on", true}, {"ON", true},
		{"false", false}, {"False", false}, {"0", false}, {"no", false}, {"NO", false}, {"off", false}, {" off ", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			got, err := kafkaevents.Config{}.FromLookup(cfgLookup(map[string]string{
				"KAFKA_FROM_BEGINNING":           tt.value,
				"KAFKA_SSL_INSECURE_SKIP_VERIFY": tt.value,
			}))
			require.NoError(t, err)
			require.NotNil(t, got.Subscriptions.FromBeginning)
			assert.Equal(t, tt.want, *got.Subscriptions.FromBeginning)
			assert.Equal(t, tt.want, got.TLS.InsecureSkipVerify)
		})
	}
}

func TestEnvListSyntax(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{name: "one", value: "a:1", want: []string{"a:1"}},
		{name: "spaces trimmed", value: " a:1 ,  b:2 ", want: []string{"a:1", "b:2"}},
		{name: "empties dropped", value: ",a:1,,b:2,", want: []string{"a:1", "b:2"}},
		{name: "only commas is unset", value: " , ,", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := kafkaevents.Config{}.FromLookup(cfgLookup(map[string]string{"KAFKA_BROKERS": tt.value, "KAFKA_TOPICS": tt.value}))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.Brokers)
			assert.Equal(t, tt.want, got.Subscriptions.Topics)
		})
	}
}

func TestEnvEmptyVariableIsUnset(t *testing.T) {
	t.Parallel()

	env := map[string]string{
		"KAFKA_CLIENT_ID":       "",
		"KAFKA_RETRY_ATTEMPTS":  "",
		"KAFKA_SESSION_TIMEOUT": "  ",
		"KAFKA_SSL_ENABLED":     "",
		"KAFKA_BROKERS":         "",
	}
	got, err := kafkaevents.Config{}.FromLookup(cfgLookup(env))
	require.NoError(t, err)
	assert.Equal(t, kafkaevents.Config{}, got)

	got.SetDefaults()
	assert.Equal(t, "kafkaevents", got.ClientID)
	assert.Equal(t, 3, got.Retry.Attempts)
	assert.Equal(t, 30*time.Second, got.Consumer.SessionTimeout)
}

func TestEnvNilLookup(t *testing.T) {
	t.Parallel()

	in := kafkaevents.Config{ClientID: "x"}
	got, err := in.FromLookup(nil)
	require.NoError(t, err)
	assert.Equal(t, in, got)
}

func TestEnvBadValues(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, variable, value, want string
	}{
		{name: "attempts word", variable: "KAFKA_RETRY_ATTEMPTS", value: "three", want: `KAFKA_RETRY_ATTEMPTS="three": want a whole number`},
		{name: "attempts fraction", variable: "KAFKA_RETRY_ATTEMPTS", value: "2.5", want: `KAFKA_RETRY_ATTEMPTS="2.5": want a whole number`},
		{name: "partitions too big", variable: "KAFKA_RETRY_PARTITIONS", value: "3000000000", want: `KAFKA_RETRY_PARTITIONS="3000000000": want a whole number that fits in 32 bits`},
		{name: "replication too big", variable: "KAFKA_DLQ_REPLICATION_FACTOR", value: "40000", want: `KAFKA_DLQ_REPLICATION_FACTOR="40000": want a whole number that fits in 16 bits`},
		{name: "dlq partitions word", variable: "KAFKA_DLQ_PARTITIONS", value: "x", want: `KAFKA_DLQ_PARTITIONS="x": want a whole number`},
		{name: "max reprocess word", variable: "KAFKA_DLQ_MAX_REPROCESS", value: "many", want: `KAFKA_DLQ_MAX_REPROCESS="many": want a whole number`},
		{name: "retry replication word", variable: "KAFKA_RETRY_REPLICATION_FACTOR", value: "one", want: `KAFKA_RETRY_REPLICATION_FACTOR="one": want a whole number`},
		{name: "bool", variable: "KAFKA_SSL_ENABLED", value: "maybe", want: `KAFKA_SSL_ENABLED="maybe": want true or false (or 1/0, yes/no, on/off)`},
		{name: "insecure bool", variable: "KAFKA_SSL_INSECURE_SKIP_VERIFY", value: "sure", want: `KAFKA_SSL_INSECURE_SKIP_VERIFY="sure": want true or false`},
		{name: "idempotent bool", variable: "KAFKA_PRODUCER_IDEMPOTENT", value: "2", want: `KAFKA_PRODUCER_IDEMPOTENT="2": want true or false`},
		{name: "from beginning bool", variable: "KAFKA_FROM_BEGINNING", value: "y", want: `KAFKA_FROM_BEGINNING="y": want true or false`},
		{name: "retry enabled bool", variable: "KAFKA_RETRY_ENABLED", value: "enabled", want: `KAFKA_RETRY_ENABLED="enabled": want true or false`},
		{name: "dlq enabled bool", variable: "KAFKA_DLQ_ENABLED", value: "t", want: `KAFKA_DLQ_ENABLED="t": want true or false`},
		{name: "monitoring enabled bool", variable: "KAFKA_MONITORING_ENABLED", value: "nope", want: `KAFKA_MONITORING_ENABLED="nope": want true or false`},
		{name: "duration word", variable: "KAFKA_RETRY_BASE_DELAY", value: "soon", want: `KAFKA_RETRY_BASE_DELAY="soon": want a non-negative duration such as 500ms, 2s or 1m30s, or a whole number of milliseconds`},
		{name: "negative duration", variable: "KAFKA_RETRY_MAX_DELAY", value: "-5s", want: `KAFKA_RETRY_MAX_DELAY="-5s": want a non-negative duration`},
		{name: "negative milliseconds", variable: "KAFKA_SESSION_TIMEOUT", value: "-100", want: `KAFKA_SESSION_TIMEOUT="-100": want a non-negative duration`},
		{name: "number without unit", variable: "KAFKA_HEARTBEAT_INTERVAL", value: "1.5", want: `KAFKA_HEARTBEAT_INTERVAL="1.5": want a non-negative duration`},
		{name: "fetch wait", variable: "KAFKA_FETCH_MAX_WAIT", value: "fast", want: `KAFKA_FETCH_MAX_WAIT="fast": want a non-negative duration`},
		{name: "shutdown", variable: "KAFKA_SHUTDOWN_TIMEOUT", value: "10 s", want: `KAFKA_SHUTDOWN_TIMEOUT="10 s": want a non-negative duration`},
		{name: "retry retention", variable: "KAFKA_RETRY_RETENTION", value: "7d", want: `KAFKA_RETRY_RETENTION="7d": want a non-negative duration`},
		{name: "retry segment", variable: "KAFKA_RETRY_SEGMENT", value: "1hour", want: `KAFKA_RETRY_SEGMENT="1hour": want a non-negative duration`},
		{name: "dlq retention", variable: "KAFKA_DLQ_RETENTION", value: "2w", want: `KAFKA_DLQ_RETENTION="2w": want a non-negative duration`},
		{name: "overflowing duration", variable: "KAFKA_RETRY_MAX_DELAY", value: "99999999999999999", want: `KAFKA_RETRY_MAX_DELAY="99999999999999999": want a non-negative duration`},
		{name: "jitter word", variable: "KAFKA_RETRY_JITTER", value: "some", want: `KAFKA_RETRY_JITTER="some": want a fraction from 0 to 1, such as 0.2`},
		{name: "jitter above one", variable: "KAFKA_RETRY_JITTER", value: "1.2", want: `KAFKA_RETRY_JITTER="1.2": want a fraction from 0 to 1`},
		{name: "jitter NaN", variable: "KAFKA_RETRY_JITTER", value: "NaN", want: `KAFKA_RETRY_JITTER="NaN": want a fraction from 0 to 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := kafkaevents.Config{ClientID: "kept"}
			got, err := in.FromLookup(cfgLookup(map[string]string{tt.variable: tt.value, "KAFKA_BROKERS": "k:9092"}))
			require.Error(t, err)
			require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, in, got, "on error the receiver comes back unchanged")
		})
	}
}

func TestEnvBadValuesAreAllReported(t *testing.T) {
	t.Parallel()

	_, err := kafkaevents.Config{}.FromLookup(cfgLookup(map[string]string{
		"KAFKA_RETRY_ATTEMPTS": "three",
		"KAFKA_SSL_ENABLED":    "maybe",
		"KAFKA_RETRY_SEGMENT":  "1hour",
		"KAFKA_SASL_PASSWORD":  "s3cr3t-pa55",
	}))
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	for _, v := range []string{"KAFKA_RETRY_ATTEMPTS", "KAFKA_SSL_ENABLED", "KAFKA_RETRY_SEGMENT"} {
		assert.Contains(t, err.Error(), v)
	}
	assert.NotContains(t, err.Error(), "s3cr3t-pa55")
}

func TestParseDuration(t *testing.T) {
	t.Parallel()

	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"1", time.Millisecond},
		{"1500", 1500 * time.Millisecond},
		{"007", 7 * time.Millisecond},
		{"500ms", 500 * time.Millisecond},
		{"2s", 2 * time.Second},
		{"1m30s", 90 * time.Second},
		{"1h2m3.5s", time.Hour + 2*time.Minute + 3500*time.Millisecond},
		{"250us", 250 * time.Microsecond},
		{"0s", 0},
		{" 3s\t", 3 * time.Second},
		{"9223372036854", 9223372036854 * time.Millisecond},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := kafkaevents.ParseDuration(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	bad := []string{
		"", "  ", "-1", "-1s", "-0.5ms", "abc", "1.5", "1e3", "10 s", "7d", "+5",
		"9223372036855",                 // milliseconds past the largest time.Duration
		"99999999999999999999999999999", // past int64
		"2562048h",                      // past the largest time.Duration
	}
	for _, in := range bad {
		t.Run("bad "+strconv.Quote(in), func(t *testing.T) {
			t.Parallel()
			_, err := kafkaevents.ParseDuration(in)
			assert.Error(t, err)
		})
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, seed := range []string{
		"0", "1500", "500ms", "2s", "1m30s", "1h2m3.5s", "-1s", "-5", "", " 2s ",
		"9223372036854", "9223372036855", "2562047h47m16.854775807s", "1.5", "+1s", "1e3",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := kafkaevents.ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, want no negative duration", s, d)
		}
		if trimmed := strings.TrimSpace(s); trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
			ms, err := strconv.ParseInt(trimmed, 10, 64)
			if err != nil || d != time.Duration(ms)*time.Millisecond {
				t.Fatalf("ParseDuration(%q) = %v, want %s milliseconds", s, d, trimmed)
			}
		}
		again, err := kafkaevents.ParseDuration(d.String())
		if err != nil || again != d {
			t.Fatalf("ParseDuration(%q) = %v, but its String %q parses to %v, %v", s, d, d.String(), again, err)
		}
	})
}
