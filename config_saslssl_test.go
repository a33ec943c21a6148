package kafkaevents_test

import (
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// saslSSLFailWithin bounds how long a failing connection attempt (wrong
// password, unverifiable certificate) may take: the broker answers both at
// once, so anything slow means a hang or a retry loop.
const saslSSLFailWithin = 10 * time.Second

// TestSASLSSLRealKafka runs SCRAM-SHA-512 over TLS against the SASL_SSL
// listener of a real Kafka broker (scripts/kafka-local.sh up exports
// KAFKA_TEST_SASL_SSL_BROKERS and KAFKA_TEST_SSL_CA_FILE, the PEM file of the
// throwaway CA that signed the broker certificate). It proves the whole
// path of a [kafkaevents.Config] built the way a service builds it: TLS turns
// on by itself with SASL, the CA file is trusted and nothing else is, the
// SCRAM exchange runs inside TLS, and a wrong password is reported as an
// authentication failure.
func TestSASLSSLRealKafka(t *testing.T) {
	brokersEnv := os.Getenv("KAFKA_TEST_SASL_SSL_BROKERS")
	if brokersEnv == "" {
		t.Skip("KAFKA_TEST_SASL_SSL_BROKERS is not set: no real SASL_SSL listener to test against (eval \"$(scripts/kafka-local.sh up)\" exports it)")
	}
	t.Parallel()

	caFile := os.Getenv("KAFKA_TEST_SSL_CA_FILE")
	user := os.Getenv("KAFKA_TEST_SASL_USERNAME")
	password := os.Getenv("KAFKA_TEST_SASL_PASSWORD")
	require.NotEmpty(t, caFile, "KAFKA_TEST_SSL_CA_FILE must name the CA of the SASL_SSL listener")
	require.NotEmpty(t, user, "KAFKA_TEST_SASL_USERNAME must be set with KAFKA_TEST_SASL_SSL_BROKERS")
	require.NotEmpty(t, password, "KAFKA_TEST_SASL_PASSWORD must be set with KAFKA_TEST_SASL_SSL_BROKERS")
	brokers := strings.Split(brokersEnv, ",")

	// TLS.Enabled stays nil: SASL turns TLS on.
	config := func(password, caFile string) kafkaevents.Config {
		return kafkaevents.Config{
			Brokers: brokers,
			SASL:    kafkaevents.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: user, Password: password},
			TLS:     kafkaevents.TLSConfig{CAFile: caFile},
		}
	}
	saramaConfig := func(t *testing.T, c kafkaevents.Config) *sarama.Config {
		t.Helper()
		sc, err := c.Sarama()
		require.NoError(t, err)
		require.True(t, sc.Net.TLS.Enable, "SASL must turn TLS on")
		require.NotNil(t, sc.Net.TLS.Config)
		require.True(t, sc.Net.SASL.Enable)
		require.Equal(t, sarama.SASLMechanism(sarama.SASLTypeSCRAMSHA512), sc.Net.SASL.Mechanism)
		return sc
	}

	t.Run("produce and consume", func(t *testing.T) {
		t.Parallel()
		sc := saramaConfig(t, config(password, caFile))

		topic := uniq("kafkaevents-saslssl")
		admin, err := sarama.NewClusterAdmin(brokers, sc)
		require.NoError(t, err)
		t.Cleanup(func() {
			assert.NoError(t, admin.DeleteTopic(topic))
			assert.NoError(t, admin.Close())
		})
		require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false))

		producer, err := sarama.NewSyncProducer(brokers, sc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, producer.Close()) })
		key, value := "key-"+topic, "SCRAM-SHA-512 over TLS "+uniq("value")
		// The topic may not have a leader yet right after CreateTopic.
		var partition int32
		var offset int64
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			partition, offset, err = producer.SendMessage(&sarama.ProducerMessage{
				Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value),
			})
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		require.NoError(t, err, "produce to %s", topic)

		consumer, err := sarama.NewConsumer(brokers, sc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, consumer.Close()) })
		pc, err := consumer.ConsumePartition(topic, partition, offset)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, pc.Close()) })
		select {
		case msg := <-pc.Messages():
			assert.Equal(t, offset, msg.Offset)
			assert.Equal(t, key, string(msg.Key))
			assert.Equal(t, value, string(msg.Value))
		case err := <-pc.Errors():
			t.Fatalf("consume %s/%d@%d: %v", topic, partition, offset, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no record from %s/%d@%d within 10s", topic, partition, offset)
		}
	})

	t.Run("stack end to end", func(t *testing.T) {
		t.Parallel()
		// The whole stack on the SASL_SSL listener only: its subscriber,
		// producer, retry consumer and DLQ. The handler fails once, so the
		// message also goes through a retry topic.
		env := newEnv(t)
		topic := uniq("saslssl-stack")
		env.createTopics(t, 1, topic)
		cfg := env.baseConfig("saslssl")
		c := config(password, caFile)
		cfg.Brokers, cfg.SASL, cfg.TLS = c.Brokers, c.SASL, c.TLS
		got := make(chan *message.Message, 2)
		rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
			_, err := s.AddHandler(r, topic, "SASLSSL.handle", func(msg *message.Message) error {
				got <- msg
				if wire.DeliveryOf(msg).RetryCount == 0 {
					return errors.New("first delivery fails")
				}
				return nil
			})
			require.NoError(t, err)
		})
		_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k", Value: "over TLS"})
		require.NoError(t, err)
		for want := range 2 {
			select {
			case msg := <-got:
				assert.Equal(t, "over TLS", string(msg.Payload))
				assert.Equal(t, want, wire.DeliveryOf(msg).RetryCount)
			case <-time.After(30 * time.Second):
				t.Fatalf("delivery %d did not arrive over SASL_SSL", want+1)
			}
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		sc := saramaConfig(t, config(password+"-wrong", caFile))

		start := time.Now()
		client, err := sarama.NewClient(brokers, sc)
		elapsed := time.Since(start)
		if err == nil {
			_ = client.Close()
		}
		require.Error(t, err, "the broker accepted a wrong password")
		t.Logf("wrong password after %s: %v", elapsed.Round(time.Millisecond), err)
		assert.ErrorIs(t, err, sarama.ErrSASLAuthenticationFailed)
		assert.Contains(t, err.Error(), "SASL Authentication failed")
		assert.Contains(t, err.Error(), "invalid credentials with SASL mechanism SCRAM-SHA-512")
		assert.Less(t, elapsed, saslSSLFailWithin)
	})

	t.Run("system roots reject the throwaway CA", func(t *testing.T) {
		t.Parallel()
		// No CA file: the system roots do not know the throwaway CA, so the
		// handshake fails before any credentials are sent.
		sc := saramaConfig(t, config(password, ""))
		require.Nil(t, sc.Net.TLS.Config.RootCAs, "no CA file means the system roots")

		start := time.Now()
		client, err := sarama.NewClient(brokers, sc)
		elapsed := time.Since(start)
		if err == nil {
			_ = client.Close()
		}
		require.Error(t, err, "TLS accepted a certificate from an unknown CA")
		t.Logf("no CA file after %s: %v", elapsed.Round(time.Millisecond), err)
		var unknownCA x509.UnknownAuthorityError
		assert.True(t, errors.As(err, &unknownCA), "want an x509.UnknownAuthorityError in the chain of %v", err)
		assert.Contains(t, err.Error(), "certificate signed by unknown authority")
		assert.NotErrorIs(t, err, sarama.ErrSASLAuthenticationFailed)
		assert.Less(t, elapsed, saslSSLFailWithin)
	})
}
