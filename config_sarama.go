package kafkaevents

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// Sarama builds a complete *sarama.Config for the client, the consumer groups
// and the producers. It runs [Config.SetDefaults] on a copy of c and then
// [Config.Validate], and returns the validation error if there is one; c
// itself is not changed. The result starts from sarama.NewConfig and sets:
//
//   - ClientID and Version;
//   - Net.TLS when [Config.TLSEnabled], with a *tls.Config of at least TLS 1.2
//     that trusts TLS.CAFile (or the system roots), presents
//     TLS.CertFile/TLS.KeyFile, and honours TLS.ServerName and
//     TLS.InsecureSkipVerify;
//   - Net.SASL when SASL.Mechanism is set: PLAIN, SCRAM-SHA-256 or
//     SCRAM-SHA-512 with handshake v1;
//   - Net.MaxOpenRequests from Producer.MaxInFlightRequests;
//   - Consumer.Group.Rebalance.Timeout from Consumer.RebalanceTimeout, and
//     Net.ReadTimeout of at least that plus 5s (65s by default), so that a
//     JoinGroup the broker holds during a rebalance does not time out;
//   - the consumer group session timeout, heartbeat interval and rebalance
//     strategy, and a rejoin backoff (Consumer.Group.Rebalance.Retry.Backoff)
//     of sarama's 2s or the heartbeat interval when that is shorter, the
//     fetch sizes and wait, Consumer.Offsets.AutoCommit.Interval from
//     Consumer.CommitInterval, Consumer.Offsets.Initial (OffsetOldest when
//     [Config.FromBeginning], else OffsetNewest) and Consumer.Return.Errors;
//   - Consumer.MaxProcessingTime of 10ms (sarama's default is 100ms), so
//     that a partition whose handler is slow does not hold up its broker's
//     fetches for the other partitions, nor the release of a partition
//     that a cooperative rebalance revokes;
//   - Producer.RequiredAcks, Producer.Idempotent, Producer.Compression and
//     both Producer.Return.Successes and Producer.Return.Errors, as
//     synchronous producers need;
//   - Producer.Flush.Frequency from Producer.Linger (left 0 for NoLinger).
//
// Everything else keeps sarama's defaults; in particular
// Metadata.AllowAutoTopicCreation stays true. Finally the result must pass
// sarama's own Validate; an error from it wraps [ErrInvalidConfig] too.
//
// The cooperative-sticky strategy keeps state and must not be shared between
// consumer groups: call Sarama once per group.
func (c Config) Sarama() (*sarama.Config, error) {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}

	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	version, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil { // Validate has parsed it already
		return nil, fmt.Errorf("%w: Version: %w", ErrInvalidConfig, err)
	}
	sc.Version = version

	if c.TLSEnabled() {
		tc, err := c.TLS.clientConfig()
		if err != nil {
			return nil, fmt.Errorf("%w: TLS: %w", ErrInvalidConfig, err)
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}

	if c.SASL.Mechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.Version = sarama.SASLHandshakeV1
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = c.SASL.Password
		switch c.SASL.Mechanism {
		case "plain":
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "scram-sha-256":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{hash: scram.SHA256}
			}
		case "scram-sha-512":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{hash: scram.SHA512}
			}
		}
	}

	sc.Net.MaxOpenRequests = c.Producer.MaxInFlightRequests

	sc.Consumer.Group.Session.Timeout = c.Consumer.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = c.Consumer.HeartbeatInterval
	sc.Consumer.Group.Rebalance.Timeout = c.Consumer.RebalanceTimeout
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{balanceStrategy(c.Consumer.RebalanceStrategy)}
	// A member told to join again (the group rebalances while it joins)
	// waits this long first: no longer than a heartbeat, which is how soon
	// the other members learn of the rebalance anyway.
	sc.Consumer.Group.Rebalance.Retry.Backoff = min(sc.Consumer.Group.Rebalance.Retry.Backoff, c.Consumer.HeartbeatInterval)
	sc.Consumer.Fetch.Min = c.Consumer.FetchMinBytes
	sc.Consumer.Fetch.Default = c.Consumer.FetchDefaultBytes
	sc.Consumer.Fetch.Max = c.Consumer.FetchMaxBytes
	sc.Consumer.MaxWaitTime = c.Consumer.MaxWaitTime
	// sarama feeds each fetch response to every partition's channel before
	// it fetches again or releases a partition; a partition whose channel
	// is full waits at most twice this long before sarama sets it aside and
	// goes on. With sarama's 100ms, a sequential handler taking 20ms per
	// record held the whole response (thousands of records), and with it
	// the release of a partition revoked by a cooperative rebalance, for
	// seconds. Fast handlers never wait that long: nothing changes for them.
	sc.Consumer.MaxProcessingTime = 10 * time.Millisecond
	sc.Consumer.Offsets.AutoCommit.Interval = c.Consumer.CommitInterval
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if c.FromBeginning() {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	sc.Consumer.Return.Errors = true
	// The broker may hold a JoinGroup for up to the rebalance timeout while
	// it waits for the other members (a crashed one among them). With a
	// shorter read timeout sarama gives up on the join, joins again as a new
	// member and waits again, for ever (IBM/sarama#2820). Read as long as
	// the rebalance timeout and 5 seconds, as the Java client does.
	sc.Net.ReadTimeout = max(sc.Net.ReadTimeout, sc.Consumer.Group.Rebalance.Timeout+5*time.Second)

	switch c.Producer.RequiredAcks {
	case "all":
		sc.Producer.RequiredAcks = sarama.WaitForAll
	case "leader":
		sc.Producer.RequiredAcks = sarama.WaitForLocal
	case "none":
		sc.Producer.RequiredAcks = sarama.NoResponse
	}
	sc.Producer.Idempotent = c.Idempotent()
	if err := sc.Producer.Compression.UnmarshalText([]byte(c.Producer.Compression)); err != nil {
		return nil, fmt.Errorf("%w: Producer.Compression: %w", ErrInvalidConfig, err)
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	if c.Producer.Linger > 0 {
		sc.Producer.Flush.Frequency = c.Producer.Linger
	}

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: sarama rejects the result: %w", ErrInvalidConfig, err)
	}
	return sc, nil
}

// balanceStrategy returns a new sarama strategy for a name Validate accepts.
func balanceStrategy(name string) sarama.BalanceStrategy {
	switch name {
	case "roundrobin":
		return sarama.NewBalanceStrategyRoundRobin()
	case "sticky":
		return sarama.NewBalanceStrategySticky()
	case "cooperative-sticky":
		return sarama.NewBalanceStrategyCooperativeSticky()
	default:
		return sarama.NewBalanceStrategyRange()
	}
}

// clientConfig builds the *tls.Config for broker connections from the files.
func (t TLSConfig) clientConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // G402 is excluded in .golangci.yml: opt-in, documented as development only
	}
	if t.CAFile != "" {
		pool, err := loadCAPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CAFile %q: %w", t.CAFile, err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The key's path is not shown: it says where a secret lives.
			return nil, &redactedError{msg: redactSecrets(fmt.Sprintf("CertFile %q, KeyFile %s: %v", t.CertFile, redacted, err), t.KeyFile), err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scramClient adapts an xdg-go/scram conversation to sarama.SCRAMClient.
// sarama creates one per connection through SCRAMClientGeneratorFunc.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation for the user. The username, password and
// authorisation ID are normalised with SASLprep, as RFC 5802 asks.
func (s *scramClient) Begin(userName, password, authzID string) error {
	client, err := s.hash.NewClient(userName, password, authzID)
	if err != nil {
		return fmt.Errorf("kafkaevents: SCRAM: %w", err)
	}
	s.conv = client.NewConversation()
	return nil
}

// Step answers one challenge of the server.
func (s *scramClient) Step(challenge string) (string, error) {
	return s.conv.Step(challenge)
}

// Done reports whether the conversation is over.
func (s *scramClient) Done() bool {
	return s.conv.Done()
}

// producerSarama returns a new sarama configuration from c (Config.Sarama)
// for a client whose producers pick partitions as the stack's do
// (newPartitioner).
func (c Config) producerSarama() (*sarama.Config, error) {
	sc, err := c.stackSarama()
	if err != nil {
		return nil, err
	}
	sc.Producer.Partitioner = newPartitioner
	return sc, nil
}

// stackSarama is Sarama for the stack's own clients and consumer groups:
// with exactly-once hand-offs the groups commit only through the hand-off
// transactions (no auto-commit), and every reader reads read_committed, so
// that the records of aborted transactions are not read. Sarama itself
// leaves both as sarama has them, for the service's other clients.
func (c Config) stackSarama() (*sarama.Config, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	if c.ExactlyOnce() {
		sc.Consumer.Offsets.AutoCommit.Enable = false
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	return sc, nil
}
