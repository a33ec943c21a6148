package kafkaevents_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/torix/kafkaevents"
)

// cfgConnect builds a sarama client from c and checks that it can talk to the
// brokers: that the client knows them and that a metadata request succeeds.
func cfgConnect(t *testing.T, c kafkaevents.Config) error {
	t.Helper()
	sc, err := c.Sarama()
	require.NoError(t, err)
	// Fail fast on a wrong password instead of retrying metadata.
	sc.Metadata.Retry.Max = 1
	sc.Metadata.Retry.Backoff = 10 * time.Millisecond
	sc.Net.DialTimeout = 10 * time.Second

	client, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		return err
	}
	defer func() { assert.NoError(t, client.Close()) }()
	if len(client.Brokers()) == 0 {
		t.Fatalf("client knows no broker")
	}
	if err := client.RefreshMetadata(); err != nil {
		return err
	}
	_, err = client.Controller()
	return err
}

// TestSaramaConnectSASL connects through SASL to the embedded broker, and to
// a real Kafka broker with SCRAM-SHA-512 when KAFKA_TEST_SASL_BROKERS is set
// (with KAFKA_TEST_SASL_USERNAME and KAFKA_TEST_SASL_PASSWORD). For the real
// broker, TLS follows the usual KAFKA_SSL_* variables and is off unless
// KAFKA_SSL_ENABLED says otherwise (the local test listener is SASL_PLAINTEXT).
func TestSaramaConnectSASL(t *testing.T) {
	t.Parallel()

	type target struct {
		name      string
		mechanism string
		brokers   func(t *testing.T) []string
		user      string
		password  string
		base      func(t *testing.T) kafkaevents.Config
		// authErr: the broker answers a wrong password with an
		// authentication error instead of closing the connection.
		authErr bool
	}
	kfakeBrokers := func(method, user, pass string) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(method, user, pass))
			require.NoError(t, err)
			t.Cleanup(c.Close)
			return c.ListenAddrs()
		}
	}
	tlsOff := func(*testing.T) kafkaevents.Config {
		return kafkaevents.Config{TLS: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)}}
	}
	targets := []target{
		{name: "kfake/plain", mechanism: "plain", brokers: kfakeBrokers("PLAIN", "user", "pass"), user: "user", password: "pass", base: tlsOff},
		{name: "kfake/scram-sha-256", mechanism: "scram-sha-256", brokers: kfakeBrokers("SCRAM-SHA-256", "user", "pass"), user: "user", password: "pass", base: tlsOff},
		{name: "kfake/scram-sha-512", mechanism: "scram-sha-512", brokers: kfakeBrokers("SCRAM-SHA-512", "user", "pass"), user: "user", password: "pass", base: tlsOff},
		{
			name:      "kafka/scram-sha-512",
			mechanism: "scram-sha-512",
			brokers: func(t *testing.T) []string {
				brokers := os.Getenv("KAFKA_TEST_SASL_BROKERS")
				if brokers == "" {
					t.Skip("KAFKA_TEST_SASL_BROKERS is not set")
				}
				return strings.Split(brokers, ",")
			},
			authErr:  true,
			user:     os.Getenv("KAFKA_TEST_SASL_USERNAME"),
			password: os.Getenv("KAFKA_TEST_SASL_PASSWORD"),
			base: func(t *testing.T) kafkaevents.Config {
				c, err := kafkaevents.Config{}.FromLookup(func(name string) (string, bool) {
					if !strings.HasPrefix(name, "KAFKA_SSL_") {
						return "", false
					}
					return os.LookupEnv(name)
				})
				require.NoError(t, err)
				if c.TLS.Enabled == nil {
					// The local test broker's SCRAM listener is
					// SASL_PLAINTEXT; KAFKA_SSL_ENABLED=true selects TLS.
					c.TLS.Enabled = kafkaevents.Bool(false)
				}
				return c
			},
		},
	}
	for _, tt := range targets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			brokers := tt.brokers(t)
			config := func(password string) kafkaevents.Config {
				c := tt.base(t)
				c.Brokers = brokers
				c.SASL = kafkaevents.SASLConfig{Mechanism: tt.mechanism, Username: tt.user, Password: password}
				return c
			}

			t.Run("right password", func(t *testing.T) {
				require.NoError(t, cfgConnect(t, config(tt.password)))
			})
			t.Run("wrong password", func(t *testing.T) {
				// kfake closes the connection, so sarama only reports that it
				// ran out of brokers; real Kafka fails the authentication.
				err := cfgConnect(t, config(tt.password+"-wrong"))
				require.Error(t, err)
				if tt.authErr {
					require.ErrorIs(t, err, sarama.ErrSASLAuthenticationFailed)
				}
			})
		})
	}
}

// TestSaramaConnectTLS connects to the embedded broker over TLS with the
// throwaway CA, with and without a client certificate, and with SASL turning
// TLS on by itself.
func TestSaramaConnectTLS(t *testing.T) {
	t.Parallel()

	pki := cfgNewTestPKI(t)
	tests := []struct {
		name       string
		clientAuth bool
		sasl       bool
		tls        kafkaevents.TLSConfig
		wantErr    string
	}{
		{name: "CA file", tls: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: pki.CAFile}},
		{name: "system roots reject the test CA", tls: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true)}, wantErr: "unknown authority"},
		{name: "insecure skip verify", tls: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), InsecureSkipVerify: true}},
		{name: "wrong server name", tls: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: pki.CAFile, ServerName: "other.example"}, wantErr: "not other.example"},
		{
			name:       "client certificate",
			clientAuth: true,
			tls: kafkaevents.TLSConfig{
				Enabled: kafkaevents.Bool(true), CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile,
			},
		},
		{name: "client certificate missing", clientAuth: true, tls: kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(true), CAFile: pki.CAFile}, wantErr: "certificate required"},
		{name: "SASL turns TLS on", sasl: true, tls: kafkaevents.TLSConfig{CAFile: pki.CAFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(pki.serverTLS(tt.clientAuth))}
			if tt.sasl {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "user", "pass"))
			}
			cluster, err := kfake.NewCluster(opts...)
			require.NoError(t, err)
			t.Cleanup(cluster.Close)

			c := kafkaevents.Config{Brokers: cluster.ListenAddrs(), TLS: tt.tls}
			if tt.sasl {
				c.SASL = kafkaevents.SASLConfig{Mechanism: "scram-sha-512", Username: "user", Password: "pass"}
			}
			err = cfgConnect(t, c)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}
