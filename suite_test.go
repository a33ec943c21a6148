package kafkaevents_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
)

// The integration suite runs against the embedded broker, or against the
// Kafka named by KAFKA_BROKERS (make test-kafka).

type testEnv struct {
	Brokers []string
	Real    bool
	Broker  *kafkatest.Broker // nil on real Kafka
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		return &testEnv{Brokers: strings.Split(v, ","), Real: true}
	}
	b := kafkatest.New(t)
	return &testEnv{Brokers: b.Addrs(), Broker: b}
}

// uniq returns a name unique to this run, so tests never share topics or
// groups on a real broker.
func uniq(base string) string {
	return fmt.Sprintf("%s-%d-%04d", base, time.Now().UnixNano()%1e9, rand.IntN(10000))
}

func (e *testEnv) saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.Producer.Return.Successes = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

func (e *testEnv) client(t *testing.T) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(e.Brokers, e.saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *testEnv) createTopics(t *testing.T, partitions int32, names ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(e.Brokers, e.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	for _, n := range names {
		err := admin.CreateTopic(n, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			require.NoError(t, err, "create topic %s", n)
		}
	}
	require.Eventually(t, func() bool {
		meta, err := admin.DescribeTopics(names)
		if err != nil {
			return false
		}
		for _, m := range meta {
			if m.Err != sarama.ErrNoError || len(m.Partitions) != int(partitions) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)
}

// committedOffset returns the offset group committed on partition 0 of topic,
// or -1 when it committed none; a failed broker call fails the test. Inside
// an Eventually condition use committedOffsetNow.
func committedOffset(t *testing.T, admin sarama.ClusterAdmin, group, topic string) int64 {
	t.Helper()
	off, err := readCommitted(admin, group, topic)
	require.NoError(t, err)
	return off
}

// committedOffsetNow is committedOffset for wait conditions, which run in a
// goroutine of their own and must try again after a transient admin error:
// it fails nothing and returns offsetUnknown when the broker call failed.
func committedOffsetNow(admin sarama.ClusterAdmin, group, topic string) int64 {
	off, err := readCommitted(admin, group, topic)
	if err != nil {
		return offsetUnknown
	}
	return off
}

// offsetUnknown is what committedOffsetNow returns when the broker did not
// answer: below every real offset and never equal to "none" (-1).
const offsetUnknown = -2

func readCommitted(admin sarama.ClusterAdmin, group, topic string) (int64, error) {
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	if err != nil {
		return 0, err
	}
	if b := offsets.GetBlock(topic, 0); b != nil {
		if b.Err != sarama.ErrNoError {
			return 0, b.Err
		}
		return b.Offset, nil
	}
	return -1, nil
}

// waitMembers waits until group is stable with members members, each of
// them assigned at least one partition. Errors of the admin calls are
// retried.
func (e *testEnv) waitMembers(t *testing.T, group string, members int, timeout time.Duration) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(e.Brokers, e.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		if gs, err := admin.DescribeConsumerGroups([]string{group}); err == nil && len(gs) == 1 {
			g := gs[0]
			assigned := 0
			for _, m := range g.Members {
				if a, err := m.GetMemberAssignment(); err == nil && a != nil && len(a.Topics) > 0 {
					assigned++
				}
			}
			last = fmt.Sprintf("state %s, %d members, %d assigned", g.State, len(g.Members), assigned)
			if g.State == "Stable" && len(g.Members) == members && assigned == members {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s: want %d members with partitions, stable, after %s; last seen: %s", group, members, timeout, last)
}

// waitSettled waits until s's group has committed every record of topic
// and its retry group every record of the retry lanes. It is the positive
// signal of an absence check: once everything read is handled and
// committed, a delivery, retry or DLQ record that has not happened yet will
// not happen.
func waitSettled(t *testing.T, s *kafkaevents.Stack, topic string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		ok, why := settled(t, s, topic)
		if ok {
			return
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not settled after %s: %s", topic, timeout, last)
}

func settled(t *testing.T, s *kafkaevents.Stack, topic string) (bool, string) {
	lag, err := s.Lag(t.Context())
	if err != nil {
		return false, err.Error()
	}
	seen := false
	for _, l := range lag {
		if l.Topic != topic {
			continue
		}
		seen = true
		if l.Committed < l.End {
			return false, fmt.Sprintf("partition %d committed %d of %d", l.Partition, l.Committed, l.End)
		}
	}
	if !seen {
		return false, "no lag reported"
	}
	lanes, err := s.RetryLanes(t.Context())
	if err != nil {
		return false, err.Error()
	}
	for _, l := range lanes {
		if l.Backlog > 0 {
			return false, fmt.Sprintf("retry lane %s: %d records", l.Topic, l.Backlog)
		}
	}
	return true, ""
}

// baseConfig is a config for one test: unique service, client and group.
func (e *testEnv) baseConfig(name string) kafkaevents.Config {
	svc := uniq(name)
	return kafkaevents.Config{
		ClientID:      svc,
		ServiceName:   svc,
		Brokers:       e.Brokers,
		Consumer:      kafkaevents.ConsumerConfig{GroupID: svc + "-group", MaxWaitTime: 100 * time.Millisecond},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Retry: kafkaevents.RetryConfig{
			Attempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Partitions: 2,
		},
		DLQ: kafkaevents.DLQConfig{Partitions: 2},
	}
}

type running struct {
	Stack  *kafkaevents.Stack
	Router *message.Router
	done   chan error
	once   sync.Once
}

// start builds a stack and a router, lets setup register handlers, runs the
// router and waits for it; Stop (also run at cleanup) closes both.
func start(t *testing.T, cfg kafkaevents.Config, setup func(s *kafkaevents.Stack, r *message.Router), opts ...kafkaevents.Option) *running {
	t.Helper()
	logger := watermill.NewStdLogger(false, false)
	if testing.Verbose() && os.Getenv("KAFKAEVENTS_TEST_DEBUG") != "" {
		logger = watermill.NewStdLogger(true, false)
	}
	opts = append([]kafkaevents.Option{kafkaevents.WithLogger(logger)}, opts...)
	s, err := kafkaevents.New(cfg, opts...)
	require.NoError(t, err)
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	require.NoError(t, err)
	s.Install(r)
	setup(s, r)
	rn := &running{Stack: s, Router: r, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(context.Background()) }()
	select {
	case <-r.Running():
	case err := <-rn.done:
		_ = s.Close()
		require.NoError(t, err, "router stopped at start")
	case <-time.After(60 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(rn.Stop)
	return rn
}

func (rn *running) Stop() {
	rn.once.Do(func() {
		_ = rn.Router.Close()
		<-rn.done
		_ = rn.Stack.Close()
	})
}

// record is a consumed record, flattened for assertions.
type record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Headers   map[string]string
	Timestamp time.Time
}

// collector reads every partition of some topics from the oldest offset.
type collector struct {
	mu      sync.Mutex
	records []record
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (e *testEnv) collect(t *testing.T, topics ...string) *collector {
	t.Helper()
	// What a consumer of the stack's topics sees: not the records of a
	// transaction before it commits (exactly-once hand-offs), so that a
	// test that waits for them and then reads the topic through the stack
	// finds them too.
	return e.collectIsolated(t, sarama.ReadCommitted, topics...)
}

// collectIsolated is collect at an isolation level: ReadCommitted skips
// the records of aborted transactions.
func (e *testEnv) collectIsolated(t *testing.T, isolation sarama.IsolationLevel, topics ...string) *collector {
	t.Helper()
	sc := e.saramaConfig()
	sc.Consumer.IsolationLevel = isolation
	client, err := sarama.NewClient(e.Brokers, sc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	consumer, err := sarama.NewConsumerFromClient(client)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel}
	for _, topic := range topics {
		var parts []int32
		require.Eventually(t, func() bool {
			_ = client.RefreshMetadata(topic)
			parts, err = client.Partitions(topic)
			return err == nil && len(parts) > 0
		}, 20*time.Second, 50*time.Millisecond, "topic %s", topic)
		for _, p := range parts {
			// A topic just created may not have its leader yet.
			var pc sarama.PartitionConsumer
			require.Eventually(t, func() bool {
				pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
				return err == nil
			}, 20*time.Second, 50*time.Millisecond, "consume %s/%d: %v", topic, p, err)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer pc.Close()
				for {
					select {
					case <-ctx.Done():
						return
					case m := <-pc.Messages():
						r := record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value), Headers: map[string]string{}, Timestamp: m.Timestamp}
						for _, h := range m.Headers {
							r.Headers[string(h.Key)] = string(h.Value)
						}
						c.mu.Lock()
						c.records = append(c.records, r)
						c.mu.Unlock()
					}
				}
			}()
		}
	}
	t.Cleanup(func() {
		cancel()
		c.wg.Wait()
		_ = consumer.Close()
	})
	return c
}

// Records returns the records read so far that match f (all when f is nil).
func (c *collector) Records(f func(record) bool) []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []record
	for _, r := range c.records {
		if f == nil || f(r) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits until at least n records match f and returns them.
func (c *collector) WaitFor(t *testing.T, n int, timeout time.Duration, f func(record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.Records(f)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d records after %s, have %d", n, timeout, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func onTopic(topic string) func(record) bool {
	return func(r record) bool { return r.Topic == topic }
}
