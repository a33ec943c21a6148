// Package embedded runs an embedded Kafka broker in process, on loopback.
// It is franz-go's kfake: a real Kafka wire-protocol implementation that
// sarama, watermill-kafka and kcat talk to, with data in memory. Package
// kafkatest exports it; it lives here so that the root package's own
// (internal) tests can use it while kafkatest builds on the root package.
package embedded

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Option configures Start.
type Option func(*options)

type options struct {
	port       int
	partitions int32
	topics     []string
	sasl       []kfake.Opt
	extra      []kfake.Opt
}

// Port fixes the listening port. Default: a random free port.
func Port(p int) Option { return func(o *options) { o.port = p } }

// Partitions sets the partition count of auto-created and seeded topics.
// Default: 3.
func Partitions(n int32) Option { return func(o *options) { o.partitions = n } }

// Topics creates these topics at start.
func Topics(names ...string) Option {
	return func(o *options) { o.topics = append(o.topics, names...) }
}

// SASL requires authentication with this mechanism ("PLAIN",
// "SCRAM-SHA-256" or "SCRAM-SHA-512") and user on every connection.
func SASL(mechanism, user, password string) Option {
	return func(o *options) {
		o.sasl = append(o.sasl, kfake.EnableSASL(), kfake.Superuser(mechanism, user, password))
	}
}

// With passes raw kfake options through.
func With(opts ...kfake.Opt) Option { return func(o *options) { o.extra = append(o.extra, opts...) } }

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts one broker on 127.0.0.1 with automatic topic creation on and,
// unless Partitions says otherwise, 3 partitions per topic.
func Start(opts ...Option) (*Broker, error) {
	o := options{partitions: 3}
	for _, opt := range opts {
		opt(&o)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(o.partitions)),
	}
	if o.port != 0 {
		kopts = append(kopts, kfake.Ports(o.port))
	}
	if len(o.topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(o.partitions, o.topics...))
	}
	kopts = append(kopts, o.sasl...)
	kopts = append(kopts, o.extra...)
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: start embedded broker: %w", err)
	}
	return &Broker{cluster: c}, nil
}

// New starts a broker for a test and closes it in t.Cleanup. It fails the
// test when the broker cannot start.
func New(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Addrs returns the broker addresses ("127.0.0.1:port").
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Cluster returns the kfake cluster, for fault injection (Cluster().ControlKey).
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker. Close routers and clients first: connections the
// broker still holds make it wait for them.
func (b *Broker) Close() { b.cluster.Close() }
