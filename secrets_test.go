package kafkaevents_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// The secrets of the configuration, each set to a marker that no log line,
// error or HTTP answer may contain.
const (
	markerPassword = "pw-marker-5a1c"
	markerToken    = "token-marker-9e2f"
	markerKeyPath  = "key-marker-3b7d"
	markerBroker   = "broker-marker-c4d8"
)

var markers = []string{markerPassword, markerToken, markerKeyPath, markerBroker}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// assertNoMarker fails for each marker that text contains.
func assertNoMarker(t *testing.T, what, text string) {
	t.Helper()
	for _, m := range markers {
		assert.NotContains(t, text, m, "%s shows a secret", what)
	}
}

// TestSecretsAreNeverPrinted sets the SASL password, the admin token, the
// TLS key path and the user information of a broker address to markers, and
// checks every error and log line (at debug level) of a run that starts,
// handles, fails, dead-letters, answers the monitoring endpoints and stops,
// and of the starts that fail.
func TestSecretsAreNeverPrinted(t *testing.T) {
	var logs syncBuffer
	logger := watermill.NewSlogLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var errs []error

	t.Run("a run with SASL and an admin token", func(t *testing.T) {
		topic := uniq("secrets")
		broker := kafkatest.New(t, kafkatest.SASL("PLAIN", "orders", markerPassword), kafkatest.Topics(topic))
		cfg := kafkaevents.Config{
			ClientID: uniq("secrets"), Brokers: broker.Addrs(),
			SASL:          kafkaevents.SASLConfig{Mechanism: "plain", Username: "orders", Password: markerPassword},
			TLS:           kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
			Monitoring:    kafkaevents.MonitoringConfig{AdminToken: markerToken},
			Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		}
		logger.Info("config", watermill.LogFields{"config": cfg})
		stack, err := kafkaevents.New(cfg, kafkaevents.WithLogger(logger))
		require.NoError(t, err)
		defer stack.Close()
		router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
		require.NoError(t, err)
		stack.Install(router)
		handled := make(chan struct{}, 1)
		_, err = stack.AddHandler(router, topic, "Secrets.handle", func(*message.Message) error {
			handled <- struct{}{}
			return wire.Permanent(errors.New("rejected"))
		})
		require.NoError(t, err)
		go func() { _ = router.Run(t.Context()) }()
		<-router.Running()
		_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
		require.NoError(t, err)
		<-handled
		require.Eventually(t, func() bool { return stack.DLQStats().MessagesStored == 1 }, 30*time.Second, 20*time.Millisecond)

		e := echo.New()
		require.NoError(t, health.Register(e, health.Config{Source: stack, AdminToken: stack.Config().Monitoring.AdminToken}))
		for _, tc := range []struct{ method, path, token string }{
			{http.MethodGet, "/kafka/health", ""},
			{http.MethodGet, "/kafka/metrics", ""},
			{http.MethodGet, "/kafka/metrics/prometheus", ""},
			{http.MethodGet, "/kafka/handlers", ""},
			{http.MethodGet, "/kafka/dlq/messages?topic=" + topic, "wrong"},
			{http.MethodGet, "/kafka/dlq/messages?topic=" + topic, markerToken},
			{http.MethodPost, "/kafka/metrics/reset?component=nope", markerToken},
		} {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			assertNoMarker(t, tc.method+" "+tc.path, rec.Body.String())
		}
		require.NoError(t, router.Close())
		errs = append(errs, stack.Close())
	})

	t.Run("a config with a TLS client key, printed and logged", func(t *testing.T) {
		cfg := kafkaevents.Config{
			Brokers: []string{"127.0.0.1:9093"},
			TLS: kafkaevents.TLSConfig{
				Enabled:  kafkaevents.Bool(true),
				CertFile: "/etc/kafka/client.pem",
				KeyFile:  "/etc/kafka/" + markerKeyPath + ".pem",
			},
		}
		logger.Info("config with TLS", watermill.LogFields{"config": cfg, "tls": cfg.TLS})
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("config with TLS", "config", cfg, "tls", cfg.TLS)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			_, _ = fmt.Fprintf(&logs, verb+"\n", cfg)
			_, _ = fmt.Fprintf(&logs, verb+"\n", cfg.TLS)
		}
		require.Contains(t, logs.String(), "/etc/kafka/client.pem", "the certificate path is no secret and is printed")
	})

	t.Run("starts that fail", func(t *testing.T) {
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := closed.Addr().String()
		require.NoError(t, closed.Close())
		env := map[string]string{
			"KAFKA_BROKERS":       "user:" + markerBroker + "@" + addr,
			"KAFKA_SASL_PASSWORD": markerPassword,
			"KAFKA_ADMIN_TOKEN":   markerToken,
			"KAFKA_SSL_KEY_FILE":  "/nonexistent/" + markerKeyPath + ".pem",
			"KAFKA_SSL_CERT_FILE": "/nonexistent/cert.pem",
		}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		cfg, err := kafkaevents.Config{}.FromLookup(lookup)
		errs = append(errs, err)
		errs = append(errs, cfg.Validate())
		_, err = kafkaevents.New(cfg, kafkaevents.WithLogger(logger))
		errs = append(errs, err)
		// A broker with user information but no password-like colon
		// passes validation and fails to connect.
		for _, brokers := range [][]string{{markerBroker + "@" + addr}, {addr}} {
			_, err = kafkaevents.New(kafkaevents.Config{
				Brokers: brokers, StartupTimeout: 2 * time.Second,
				SASL: kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: markerPassword},
				TLS:  kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
			}, kafkaevents.WithLogger(logger))
			require.Error(t, err)
			errs = append(errs, err)
		}
		env["KAFKA_RETRY_ATTEMPTS"] = "many " + markerPassword // a bad value next to the secrets
		_, err = kafkaevents.Config{}.FromLookup(lookup)
		errs = append(errs, err)
	})

	nonNil := 0
	for _, err := range errs {
		if err != nil {
			nonNil++
			t.Log(err)
			assertNoMarker(t, "an error", err.Error())
		}
	}
	assert.GreaterOrEqual(t, nonNil, 4, "the failing starts returned errors")
	lines := strings.Split(logs.String(), "\n")
	t.Logf("%d log lines", len(lines))
	assert.Greater(t, len(lines), 20)
	for _, l := range lines {
		assertNoMarker(t, "a log line", l)
	}
}
