package kafkaevents

import (
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// configLeafFields returns the Go path of every field of Config that is not
// a struct of fields, in declaration order.
func configLeafFields(t reflect.Type, prefix string) []string {
	var paths []string
	for i := range t.NumField() {
		f := t.Field(i)
		path := prefix + f.Name
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			paths = append(paths, configLeafFields(f.Type, path+".")...)
			continue
		}
		paths = append(paths, path)
	}
	return paths
}

// TestConfigFieldsListEveryField checks that configFields has one row per
// field of Config, so that the table of docs/configuration.md does too.
func TestConfigFieldsListEveryField(t *testing.T) {
	var listed []string
	for _, f := range configFields {
		listed = append(listed, f.field)
	}
	assert.ElementsMatch(t, configLeafFields(reflect.TypeFor[Config](), ""), listed)
}

var envName = regexp.MustCompile(`^KAFKA_[A-Z0-9_]+$`)

// TestConfigFieldsRead checks every row with a variable: the name is a
// KAFKA_* name used once, the path resolves, and the reader fills the field
// from a value of its syntax and leaves a field that is already set alone.
func TestConfigFieldsRead(t *testing.T) {
	sample := map[reflect.Type]string{
		reflect.TypeFor[string]():        "x",
		reflect.TypeFor[[]string]():      "a,b",
		reflect.TypeFor[*bool]():         "true",
		reflect.TypeFor[bool]():          "true",
		reflect.TypeFor[time.Duration](): "2s",
		reflect.TypeFor[int]():           "2",
		reflect.TypeFor[int16]():         "2",
		reflect.TypeFor[int32]():         "2",
		reflect.TypeFor[float64]():       "0.5",
	}
	seen := map[string]bool{}
	for _, f := range configFields {
		if f.env == "" {
			continue
		}
		t.Run(f.env, func(t *testing.T) {
			require.Regexp(t, envName, f.env)
			require.False(t, seen[f.env], "%s is declared twice", f.env)
			seen[f.env] = true

			var c Config
			dst := reflect.ValueOf(fieldAddr(&c, f.field)).Elem()
			value, ok := sample[dst.Type()]
			require.True(t, ok, "no sample for %s of type %s: readByType needs a case for it", f.field, dst.Type())

			got, err := Config{}.FromLookup(func(name string) (string, bool) { return value, name == f.env })
			require.NoError(t, err)
			assert.Equal(t, []string{f.field}, setFields(got), "%s=%q must set %s and nothing else", f.env, value, f.field)

			again, err := got.FromLookup(func(name string) (string, bool) { return "not-a-value", name == f.env })
			require.NoError(t, err, "the variable of a field already set is not read")
			assert.Equal(t, got, again)
		})
	}
	require.NotEmpty(t, seen)
}

// setFields returns the paths of the fields of c that are not zero.
func setFields(c Config) []string {
	var set []string
	for _, p := range configLeafFields(reflect.TypeFor[Config](), "") {
		if !reflect.ValueOf(fieldAddr(&c, p)).Elem().IsZero() {
			set = append(set, p)
		}
	}
	return set
}

func TestEnvFor(t *testing.T) {
	tests := []struct{ name, field, want string }{
		{name: "top level", field: "ClientID", want: "KAFKA_CLIENT_ID"},
		{name: "nested", field: "Consumer.CommitInterval", want: "KAFKA_CONSUMER_COMMIT_INTERVAL"},
		{name: "indexed", field: "Brokers[2]", want: "KAFKA_BROKERS"},
		{name: "indexed nested", field: "Subscriptions.Topics[0]", want: "KAFKA_TOPICS"},
		{name: "no variable", field: "ServiceName", want: ""},
		{name: "unknown", field: "Nope", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, envFor(tt.field))
		})
	}
	assert.Equal(t, "KAFKA_STARTUP_TIMEOUT", envStartupTimeout)
}
