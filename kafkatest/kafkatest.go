// Package kafkatest is the test kit for services built on kafkaevents.
//
// NewHarness is the usual entry point of a handler test: one call starts
// an embedded broker (or uses the Kafka named by KAFKA_BROKERS), builds a
// kafkaevents.Stack with consumer-group timings and retry delays fit for
// tests, lets the test register its handlers, runs the router and returns
// once the consumer groups have their partitions. The Harness then sends
// records, reads topics, and waits for retries and DLQ records, each wait
// bounded by a timeout that fails the test with what it saw.
//
// Start and New run only the embedded broker: franz-go's kfake, a real Kafka
// wire-protocol implementation that sarama, watermill-kafka and kcat talk to,
// with data in memory, in process on loopback.
package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/torix/kafkaevents/internal/embedded"
)

// Option configures Start and New.
type Option = embedded.Option

// Broker is a running embedded broker.
type Broker = embedded.Broker

// Port fixes the listening port. Default: a random free port.
func Port(p int) Option { return embedded.Port(p) }

// Partitions sets the partition count of auto-created and seeded topics.
// Default: 3.
func Partitions(n int32) Option { return embedded.Partitions(n) }

// Topics creates these topics at start.
func Topics(names ...string) Option { return embedded.Topics(names...) }

// SASL requires authentication with this mechanism ("PLAIN",
// "SCRAM-SHA-256" or "SCRAM-SHA-512") and user on every connection.
func SASL(mechanism, user, password string) Option {
	return embedded.SASL(mechanism, user, password)
}

// With passes raw kfake options through.
func With(opts ...kfake.Opt) Option { return embedded.With(opts...) }

// Start starts one broker on 127.0.0.1 with automatic topic creation on and,
// unless Partitions says otherwise, 3 partitions per topic. Close it when
// done, after the routers and clients that use it.
func Start(opts ...Option) (*Broker, error) { return embedded.Start(opts...) }

// New starts a broker for a test and closes it in t.Cleanup. It fails the
// test when the broker cannot start.
func New(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	return embedded.New(t, opts...)
}
