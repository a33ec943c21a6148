package kafkaevents_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// cfgTestPKI is a throwaway CA with a server and a client certificate, all
// written as PEM files into a temporary directory.
type cfgTestPKI struct {
	CAFile         string
	ServerCertFile string
	ServerKeyFile  string
	ClientCertFile string
	ClientKeyFile  string

	CA     *x509.Certificate
	Server tls.Certificate
}

func cfgNewTestPKI(t *testing.T) cfgTestPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkaevents test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}

	serverCert, serverKey := issue(2, "localhost", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := issue(3, "kafkaevents test client", x509.ExtKeyUsageClientAuth)
	server, err := tls.X509KeyPair(serverCert, serverKey)
	require.NoError(t, err)

	return cfgTestPKI{
		CAFile:         write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		ServerCertFile: write("server.pem", serverCert),
		ServerKeyFile:  write("server.key", serverKey),
		ClientCertFile: write("client.pem", clientCert),
		ClientKeyFile:  write("client.key", clientKey),
		CA:             ca,
		Server:         server,
	}
}

// serverTLS returns the broker side of TLS; with clientAuth the broker also
// requires a client certificate signed by the CA.
func (p cfgTestPKI) serverTLS(clientAuth bool) *tls.Config {
	tc := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		pool := x509.NewCertPool()
		pool.AddCert(p.CA)
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc
}

func TestSaramaConfigFields(t *testing.T) {
	t.Parallel()

	in := kafkaevents.Config{
		ClientID: "orders",
		Brokers:  []string{"localhost:9092"},
		Version:  "3.6.0",
		Consumer: kafkaevents.ConsumerConfig{
			SessionTimeout:    20 * time.Second,
			HeartbeatInterval: 2 * time.Second,
			FetchMinBytes:     10,
			FetchDefaultBytes: 2 << 20,
			FetchMaxBytes:     8 << 20,
			MaxWaitTime:       400 * time.Millisecond,
			RebalanceStrategy: "roundrobin",
			CommitInterval:    250 * time.Millisecond,
		},
		Producer: kafkaevents.ProducerConfig{
			Idempotent:   kafkaevents.Bool(true),
			RequiredAcks: "-1",
			Compression:  "snappy",
		},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
	}
	before := in.String()
	sc, err := in.Sarama()
	require.NoError(t, err)
	assert.Equal(t, before, in.String(), "Sarama does not change its receiver")
	assert.Empty(t, in.Producer.MaxInFlightRequests, "Sarama does not change its receiver")

	assert.Equal(t, "orders", sc.ClientID)
	assert.Equal(t, sarama.V3_6_0_0, sc.Version)
	assert.False(t, sc.Net.TLS.Enable)
	assert.Nil(t, sc.Net.TLS.Config)
	assert.False(t, sc.Net.SASL.Enable)
	assert.Equal(t, 1, sc.Net.MaxOpenRequests, "idempotent defaults to one request in flight")
	assert.Equal(t, 20*time.Second, sc.Consumer.Group.Session.Timeout)
	assert.Equal(t, 2*time.Second, sc.Consumer.Group.Heartbeat.Interval)
	assert.Equal(t, 2*time.Second, sc.Consumer.Group.Rebalance.Retry.Backoff, "sarama's 2s, not above the heartbeat")
	require.Len(t, sc.Consumer.Group.Rebalance.GroupStrategies, 1)
	assert.Equal(t, sarama.RoundRobinBalanceStrategyName, sc.Consumer.Group.Rebalance.GroupStrategies[0].Name())
	assert.Equal(t, int32(10), sc.Consumer.Fetch.Min)
	assert.Equal(t, int32(2<<20), sc.Consumer.Fetch.Default)
	assert.Equal(t, int32(8<<20), sc.Consumer.Fetch.Max)
	assert.Equal(t, 400*time.Millisecond, sc.Consumer.MaxWaitTime)
	assert.Equal(t, sarama.OffsetOldest, sc.Consumer.Offsets.Initial)
	assert.Equal(t, 250*time.Millisecond, sc.Consumer.Offsets.AutoCommit.Interval)
	assert.True(t, sc.Consumer.Return.Errors)
	assert.Equal(t, sarama.WaitForAll, sc.Producer.RequiredAcks)
	assert.True(t, sc.Producer.Idempotent)
	assert.Equal(t, sarama.CompressionSnappy, sc.Producer.Compression)
	assert.True(t, sc.Producer.Return.Successes)
	assert.True(t, sc.Producer.Return.Errors)
	assert.True(t, sc.Metadata.AllowAutoTopicCreation, "sarama's default is kept")
	require.NoError(t, sc.Validate())
}

// A member asked to join again waits no longer than a heartbeat: with a
// 100ms heartbeat, a group of two subscriptions settles in a few hundred
// milliseconds instead of sarama's 2s backoff.
func TestSaramaRejoinBackoffFollowsHeartbeat(t *testing.T) {
	t.Parallel()

	sc, err := kafkaevents.Config{
		Brokers:  []string{"localhost:9092"},
		Consumer: kafkaevents.ConsumerConfig{HeartbeatInterval: 100 * time.Millisecond},
	}.Sarama()
	require.NoError(t, err)
	assert.Equal(t, 100*time.Millisecond, sc.Consumer.Group.Rebalance.Retry.Backoff)
}

func TestSaramaConfigDefaults(t *testing.T) {
	t.Parallel()

	sc, err := kafkaevents.Config{Brokers: []string{"localhost:9092"}}.Sarama()
	require.NoError(t, err)
	assert.Equal(t, "kafkaevents", sc.ClientID)
	assert.Equal(t, sarama.V2_8_0_0, sc.Version)
	assert.Equal(t, 5, sc.Net.MaxOpenRequests)
	assert.Equal(t, 30*time.Second, sc.Consumer.Group.Session.Timeout)
	assert.Equal(t, 3*time.Second, sc.Consumer.Group.Heartbeat.Interval)
	assert.Equal(t, 2*time.Second, sc.Consumer.Group.Rebalance.Retry.Backoff)
	assert.Equal(t, sarama.RangeBalanceStrategyName, sc.Consumer.Group.Rebalance.GroupStrategies[0].Name())
	assert.Equal(t, int32(1), sc.Consumer.Fetch.Min)
	assert.Equal(t, int32(1<<20), sc.Consumer.Fetch.Default)
	assert.Equal(t, int32(0), sc.Consumer.Fetch.Max)
	assert.Equal(t, 250*time.Millisecond, sc.Consumer.MaxWaitTime)
	assert.Equal(t, sarama.OffsetNewest, sc.Consumer.Offsets.Initial)
	assert.Equal(t, sarama.WaitForAll, sc.Producer.RequiredAcks)
	assert.False(t, sc.Producer.Idempotent)
	assert.Equal(t, sarama.CompressionNone, sc.Producer.Compression)
	assert.Equal(t, 5*time.Millisecond, sc.Producer.Flush.Frequency, "records gather for the default linger")
	assert.False(t, sc.Net.TLS.Enable)
	assert.False(t, sc.Net.SASL.Enable)
}

func TestSaramaRebalanceStrategies(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, strategy, want string
		stateful             bool
	}{
		{name: "range", strategy: "range", want: sarama.RangeBalanceStrategyName},
		{name: "roundrobin", strategy: "RoundRobin", want: sarama.RoundRobinBalanceStrategyName},
		{name: "sticky", strategy: "sticky", want: sarama.StickyBalanceStrategyName, stateful: true},
		{name: "cooperative-sticky", strategy: "cooperative-sticky", want: sarama.CooperativeStickyBalanceStrategyName, stateful: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := kafkaevents.Config{
				Brokers:  []string{"localhost:9092"},
				Consumer: kafkaevents.ConsumerConfig{RebalanceStrategy: tt.strategy},
			}
			first, err := c.Sarama()
			require.NoError(t, err)
			second, err := c.Sarama()
			require.NoError(t, err)
			require.Len(t, first.Consumer.Group.Rebalance.GroupStrategies, 1)
			assert.Equal(t, tt.want, first.Consumer.Group.Rebalance.GroupStrategies[0].Name())
			if tt.stateful {
				assert.NotSame(t, first.Consumer.Group.Rebalance.GroupStrategies[0], second.Consumer.Group.Rebalance.GroupStrategies[0],
					"every call gets its own sticky strategy, as those keep state")
			}
		})
	}
}

func TestSaramaAcksAndCompression(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, acks, compression string
		wantAcks                sarama.RequiredAcks
		wantCodec               sarama.CompressionCodec
	}{
		{name: "all gzip", acks: "all", compression: "gzip", wantAcks: sarama.WaitForAll, wantCodec: sarama.CompressionGZIP},
		{name: "leader lz4", acks: "leader", compression: "lz4", wantAcks: sarama.WaitForLocal, wantCodec: sarama.CompressionLZ4},
		{name: "one zstd", acks: "1", compression: "ZSTD", wantAcks: sarama.WaitForLocal, wantCodec: sarama.CompressionZSTD},
		{name: "none none", acks: "none", compression: "none", wantAcks: sarama.NoResponse, wantCodec: sarama.CompressionNone},
		{name: "zero snappy", acks: "0", compression: "snappy", wantAcks: sarama.NoResponse, wantCodec: sarama.CompressionSnappy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc, err := kafkaevents.Config{
				Brokers:  []string{"localhost:9092"},
				Producer: kafkaevents.ProducerConfig{RequiredAcks: tt.acks, Compression: tt.compression},
			}.Sarama()
			require.NoError(t, err)
			assert.Equal(t, tt.wantAcks, sc.Producer.RequiredAcks)
			assert.Equal(t, tt.wantCodec, sc.Producer.Compression)
		})
	}
}

func TestSaramaSASL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, mechanism string
		want            sarama.SASLMechanism
		scram           bool
	}{
		{name: "plain", mechanism: "plain", want: sarama.SASLTypePlaintext},
		{name: "scram-sha-256", mechanism: "SCRAM-SHA-256", want: sarama.SASLTypeSCRAMSHA256, scram: true},
		{name: "scram-sha-512", mechanism: "scram-sha-512", want: sarama.SASLTypeSCRAMSHA512, scram: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc, err := kafkaevents.Config{
				Brokers: []string{"localhost:9092"},
				SASL:    kafkaevents.SASLConfig{Mechanism: tt.mechanism, Username: "user", Password: "pass"},
			}.Sarama()
			require.NoError(t, err)
			assert.True(t, sc.Net.SASL.Enable)
			assert.Equal(t, tt.want, sc.Net.SASL.Mechanism)
			assert.Equal(t, "user", sc.Net.SASL.User)
			assert.Equal(t, "pass", sc.Net.SASL.Password)
			assert.True(t, sc.Net.SASL.Handshake)
			assert.Equal(t, sarama.SASLHandshakeV1, sc.Net.SASL.Version)
			if tt.scram {
				require.NotNil(t, sc.Net.SASL.SCRAMClientGeneratorFunc)
				client := sc.Net.SASL.SCRAMClientGeneratorFunc()
				require.NoError(t, client.Begin("user", "pass", ""))
				first, err := client.Step("")
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(first, "n,,n=user,r="), "SCRAM client-first message, got %q", first)
				assert.False(t, client.Done())
			} else {
				assert.Nil(t, sc.Net.SASL.SCRAMClientGeneratorFunc)
			}

			assert.True(t, sc.Net.TLS.Enable, "SASL alone turns TLS on")
			require.NotNil(t, sc.Net.TLS.Config)
			assert.Equal(t, uint16(tls.VersionTLS12), sc.Net.TLS.Config.MinVersion)
			assert.Nil(t, sc.Net.TLS.Config.RootCAs, "no CA file means the system roots")
		})
	}
}

func TestSaramaTLSFromFiles(t *testing.T) {
	t.Parallel()

	pki := cfgNewTestPKI(t)
	sc, err := kafkaevents.Config{
		Brokers: []string{"localhost:9092"},
		TLS: kafkaevents.TLSConfig{
			Enabled:            kafkaevents.Bool(true),
			CAFile:             pki.CAFile,
			CertFile:           pki.ClientCertFile,
			KeyFile:            pki.ClientKeyFile,
			ServerName:         "kafka.internal",
			InsecureSkipVerify: true,
		},
	}.Sarama()
	require.NoError(t, err)

	require.True(t, sc.Net.TLS.Enable)
	tc := sc.Net.TLS.Config
	require.NotNil(t, tc)
	assert.Equal(t, uint16(tls.VersionTLS12), tc.MinVersion)
	assert.Equal(t, "kafka.internal", tc.ServerName)
	assert.True(t, tc.InsecureSkipVerify)
	want := x509.NewCertPool()
	want.AddCert(pki.CA)
	require.NotNil(t, tc.RootCAs)
	assert.True(t, want.Equal(tc.RootCAs), "RootCAs holds exactly the test CA")
	require.Len(t, tc.Certificates, 1)
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	require.NoError(t, err)
	assert.Equal(t, "kafkaevents test client", leaf.Subject.CommonName)
	assert.False(t, sc.Net.SASL.Enable)
}

func TestSaramaTLSExplicitlyOffWithSASL(t *testing.T) {
	t.Parallel()

	sc, err := kafkaevents.Config{
		Brokers: []string{"localhost:9092"},
		TLS:     kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false), CAFile: "/nonexistent/ca.pem"},
		SASL:    kafkaevents.SASLConfig{Mechanism: "plain", Username: "u", Password: "p"},
	}.Sarama()
	require.NoError(t, err)
	assert.False(t, sc.Net.TLS.Enable)
	assert.Nil(t, sc.Net.TLS.Config)
	assert.True(t, sc.Net.SASL.Enable)
}

func TestSaramaRejectsInvalidConfig(t *testing.T) {
	t.Parallel()

	in := kafkaevents.Config{Retry: kafkaevents.RetryConfig{Backoff: "fibonacci"}}
	sc, err := in.Sarama()
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	assert.Nil(t, sc)
	assert.Contains(t, err.Error(), "Brokers is empty")
	assert.Contains(t, err.Error(), `Retry.Backoff = "fibonacci"`)
	assert.Empty(t, in.ClientID, "Sarama does not change its receiver")
}

func TestSaramaReportsSaramaValidation(t *testing.T) {
	t.Parallel()

	// Valid for Validate, but sarama wants a session timeout above 2ms.
	_, err := kafkaevents.Config{
		Brokers:  []string{"localhost:9092"},
		Consumer: kafkaevents.ConsumerConfig{SessionTimeout: 2 * time.Millisecond, HeartbeatInterval: time.Millisecond},
	}.Sarama()
	require.ErrorIs(t, err, kafkaevents.ErrInvalidConfig)
	var cfgErr sarama.ConfigurationError
	require.ErrorAs(t, err, &cfgErr)
	assert.Contains(t, err.Error(), "Consumer.Group.Session.Timeout")
}

func TestSaramaLinger(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		linger, want time.Duration
	}{
		{5 * time.Millisecond, 5 * time.Millisecond},
		{kafkaevents.NoLinger, 0},
	} {
		c := kafkaevents.Config{Brokers: []string{"k:9092"}, Producer: kafkaevents.ProducerConfig{Linger: tt.linger}}
		sc, err := c.Sarama()
		require.NoError(t, err)
		assert.Equal(t, tt.want, sc.Producer.Flush.Frequency, "Linger %s", tt.linger)
	}
}
