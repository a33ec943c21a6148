package kafkaevents_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// cfgSecretsConfig returns a config whose secrets must never be printed.
func cfgSecretsConfig() kafkaevents.Config {
	return kafkaevents.Config{
		ClientID: "orders",
		Brokers:  []string{"kafka-1:9092"},
		TLS:      kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: "/etc/kafka/ca.pem"},
		SASL: kafkaevents.SASLConfig{
			Mechanism: "scram-sha-512",
			Username:  "orders-user",
			Password:  "s3cr3t-pa55",
		},
		Retry:      kafkaevents.RetryConfig{BaseDelay: 1500 * time.Millisecond},
		Monitoring: kafkaevents.MonitoringConfig{AdminToken: "t0k3n-s3cr3t"},
	}
}

func TestConfigRedactsSecretsInFmt(t *testing.T) {
	t.Parallel()

	c := cfgSecretsConfig()
	wrapper := struct{ Cfg kafkaevents.Config }{Cfg: c}
	tests := []struct {
		name string
		got  string
		// shown must appear: proof that the config itself was printed.
		shown []string
	}{
		{name: "Sprint", got: fmt.Sprint(c), shown: []string{"orders-user", "Password:[redacted]", "AdminToken:[redacted]", "BaseDelay:1.5s", "Enabled:true"}},
		{name: "Println", got: fmt.Sprintln(c), shown: []string{"orders-user", "[redacted]"}},
		{name: "%v", got: fmt.Sprintf("%v", c), shown: []string{"kafka-1:9092", "[redacted]"}},
		{name: "%+v", got: fmt.Sprintf("%+v", c), shown: []string{"ClientID:orders", "Password:[redacted]"}},
		{name: "%#v", got: fmt.Sprintf("%#v", c), shown: []string{
			`kafkaevents.Config{ClientID:"orders"`, `Password:"[redacted]"`, `AdminToken:"[redacted]"`, "kafkaevents.Bool(true)",
		}},
		{name: "%s", got: fmt.Sprintf("%s", c), shown: []string{"[redacted]"}},
		{name: "%q", got: fmt.Sprintf("%q", c), shown: []string{"[redacted]"}},
		{name: "%d", got: fmt.Sprintf("%d", c), shown: []string{"[redacted]"}},
		{name: "%x", got: fmt.Sprintf("%x", c), shown: []string{fmt.Sprintf("%x", "[redacted]")}},
		{name: "pointer", got: fmt.Sprintf("%+v", &c), shown: []string{"orders-user", "[redacted]"}},
		{name: "String", got: c.String(), shown: []string{"[redacted]"}},
		{name: "GoString", got: c.GoString(), shown: []string{`"[redacted]"`}},
		{name: "inside another struct", got: fmt.Sprintf("%+v", wrapper), shown: []string{"orders-user", "[redacted]"}},
		{name: "inside another struct %#v", got: fmt.Sprintf("%#v", wrapper), shown: []string{"orders-user", `"[redacted]"`}},
		{name: "SASL %v", got: fmt.Sprintf("%v", c.SASL), shown: []string{"orders-user", "Password:[redacted]"}},
		{name: "SASL %+v", got: fmt.Sprintf("%+v", c.SASL), shown: []string{"Username:orders-user", "Password:[redacted]"}},
		{name: "SASL %#v", got: fmt.Sprintf("%#v", c.SASL), shown: []string{"kafkaevents.SASLConfig{", `Password:"[redacted]"`}},
		{name: "SASL String", got: c.SASL.String(), shown: []string{"[redacted]"}},
		{name: "SASL GoString", got: c.SASL.GoString(), shown: []string{"[redacted]"}},
		{name: "Monitoring %v", got: fmt.Sprintf("%v", c.Monitoring), shown: []string{"AdminToken:[redacted]"}},
		{name: "Monitoring %+v", got: fmt.Sprintf("%+v", c.Monitoring), shown: []string{"AdminToken:[redacted]"}},
		{name: "Monitoring %#v", got: fmt.Sprintf("%#v", c.Monitoring), shown: []string{"kafkaevents.MonitoringConfig{", `AdminToken:"[redacted]"`}},
		{name: "Monitoring String", got: c.Monitoring.String(), shown: []string{"[redacted]"}},
		{name: "Monitoring GoString", got: c.Monitoring.GoString(), shown: []string{"[redacted]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, secret := range []string{"s3cr3t-pa55", "t0k3n-s3cr3t"} {
				assert.NotContains(t, tt.got, secret)
				assert.NotContains(t, tt.got, fmt.Sprintf("%x", secret))
			}
			for _, s := range tt.shown {
				assert.Contains(t, tt.got, s)
			}
		})
	}
}

func TestConfigRedactsOnlySetSecrets(t *testing.T) {
	t.Parallel()

	c := kafkaevents.Config{SASL: kafkaevents.SASLConfig{Mechanism: "plain", Username: "u"}}
	assert.NotContains(t, c.String(), "[redacted]", "an empty secret stays empty")
	assert.Contains(t, c.String(), "Password:}")
	assert.Contains(t, c.GoString(), `Password:""`)
	assert.Contains(t, c.String(), "Enabled:<nil>")
	assert.Contains(t, c.GoString(), "Enabled:nil")
}

func TestConfigRedactsSecretsInSlog(t *testing.T) {
	t.Parallel()

	c := cfgSecretsConfig()
	tests := []struct {
		name    string
		handler func(*bytes.Buffer) slog.Handler
	}{
		{name: "json", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{name: "text", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := slog.New(tt.handler(&buf))
			log.Info("starting", "config", c, "sasl", c.SASL, "monitoring", c.Monitoring)
			log.Info("starting", slog.Any("config", &c))
			out := buf.String()
			assert.NotContains(t, out, "s3cr3t-pa55")
			assert.NotContains(t, out, "t0k3n-s3cr3t")
			assert.Contains(t, out, "orders-user")
			assert.Contains(t, out, "[redacted]")
		})
	}
}

func TestConfigLogValueKeys(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "config", cfgSecretsConfig())

	var rec struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	cfg := rec.Config
	assert.Equal(t, "orders", cfg["client_id"])
	assert.Equal(t, []any{"kafka-1:9092"}, cfg["brokers"])
	tls, ok := cfg["tls"].(map[string]any)
	require.True(t, ok, "tls is a group: %v", cfg)
	assert.Equal(t, true, tls["enabled"])
	assert.Equal(t, "/etc/kafka/ca.pem", tls["ca_file"])
	assert.Equal(t, false, tls["insecure_skip_verify"])
	sasl, ok := cfg["sasl"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "[redacted]", sasl["password"])
	assert.Equal(t, "orders-user", sasl["username"])
	retry, ok := cfg["retry"].(map[string]any)
	require.True(t, ok)
	assert.InDelta(t, float64(1500*time.Millisecond), retry["base_delay"], 0)
	assert.Nil(t, retry["enabled"])
	producer, ok := cfg["producer"].(map[string]any)
	require.True(t, ok)
	assert.Contains(t, producer, "max_in_flight_requests")
	monitoring, ok := cfg["monitoring"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "[redacted]", monitoring["admin_token"])
}
