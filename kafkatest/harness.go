package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// Harness is a running kafkaevents stack for a test: a broker, the stack, a
// router with the test's handlers, and a client of its own to send and read
// records. Build it with NewHarness; everything is closed in t.Cleanup,
// router first, broker last.
//
// Topic names given to its methods are the names the test knows. On the
// embedded broker they are used as they are; on real Kafka (KAFKA_BROKERS)
// they get a suffix unique to the run, which Topic returns. A handler that
// publishes to a topic the test reads should publish to h.Topic(name): on
// real Kafka the harness deletes the topics of its run at the end of the
// test (see NewHarness).
type Harness struct {
	// Stack is the kafkaevents stack under test.
	Stack *kafkaevents.Stack
	// Router is the Watermill router the stack is installed on.
	Router *message.Router
	// Broker is the embedded broker; nil on real Kafka.
	Broker *Broker
	// Brokers are the broker addresses.
	Brokers []string

	t      testing.TB
	suffix string
	client sarama.Client
	sync   sarama.SyncProducer
	topics []string
	done   chan error
}

// HarnessOption configures NewHarness.
type HarnessOption func(*harnessOptions)

type harnessOptions struct {
	configure    []func(*kafkaevents.Config)
	stackOptions []kafkaevents.Option
	partitions   int32
	startTimeout time.Duration
	logLevel     slog.Level
}

// Configure changes the stack's Config after the harness has filled it in
// (brokers, names, fast timings; see NewHarness), before the stack is built.
func Configure(fn func(cfg *kafkaevents.Config)) HarnessOption {
	return func(o *harnessOptions) { o.configure = append(o.configure, fn) }
}

// StackOptions passes options to kafkaevents.New, such as
// kafkaevents.WithTracerProvider. The harness sets WithLogger first, so a
// WithLogger here replaces its logger.
func StackOptions(opts ...kafkaevents.Option) HarnessOption {
	return func(o *harnessOptions) { o.stackOptions = append(o.stackOptions, opts...) }
}

// HandlerPartitions sets the partitions of the handled topics the harness
// creates. Default: 1, so that records of a test keep their order.
func HandlerPartitions(n int32) HarnessOption { return func(o *harnessOptions) { o.partitions = n } }

// StartTimeout bounds how long NewHarness waits for the router to run and
// the consumer groups to get their partitions. Default: 30s.
func StartTimeout(d time.Duration) HarnessOption {
	return func(o *harnessOptions) { o.startTimeout = d }
}

// LogLevel sets the level of the stack's and the router's logs, which go to
// the test's output (shown with -v or when the test fails). Default: warn.
func LogLevel(l slog.Level) HarnessOption { return func(o *harnessOptions) { o.logLevel = l } }

// Test timings: what NewHarness sets, and why.
const (
	// HeartbeatInterval is the consumer-group heartbeat: a member learns of
	// a rebalance on its next heartbeat, so each join of a test's second
	// subscription costs this instead of the default 3s.
	HeartbeatInterval = 100 * time.Millisecond
	// SessionTimeout is the least that Kafka (group.min.session.timeout.ms)
	// and the embedded broker accept.
	SessionTimeout = 6 * time.Second
	// CommitInterval is how often handled records are committed, so that
	// a test that stops a harness and starts another on the same group
	// sees them committed without waiting for the default 1s.
	CommitInterval = 100 * time.Millisecond
	// RetryBaseDelay and RetryMaxDelay are the retry delays: 50ms, 100ms,
	// 200ms for the 3 default attempts.
	RetryBaseDelay = 50 * time.Millisecond
	RetryMaxDelay  = 200 * time.Millisecond
)

// NewHarness starts a stack for a test and returns once its router runs and
// its consumer groups (the handlers' and the retry consumer's) have every
// partition assigned, so that the first record sent is handled at once.
//
// The broker is an embedded one, or the Kafka named by KAFKA_BROKERS
// (comma-separated) when that is set; then the service name, consumer group
// and handled topics get a suffix unique to the run. The config has:
// HeartbeatInterval, SessionTimeout, CommitInterval, a rebalance timeout of 5s, a shutdown
// timeout of 5s, a fetch wait of 50ms, FromBeginning, retries after
// RetryBaseDelay up to RetryMaxDelay, and one partition per retry and DLQ
// topic. Configure changes any of it.
//
// setup registers the handlers, usually with h.AddHandler; it may use
// h.Stack and h.Router directly. The topics of the handlers registered with
// h.AddHandler are created before the router runs. NewHarness fails the test
// when something does not start.
//
// At the end of the test, after the stack is closed, a harness on real Kafka
// deletes every topic and consumer group whose name carries the run's
// suffix: the handled topics, the retry and DLQ topics, the topics written
// through h.Topic, and the stack's consumer groups. A topic or group that
// Configure named without the suffix is left alone. A deletion that fails is
// logged with t.Logf and does not fail the test. On the embedded broker
// nothing is deleted: the broker and its data go with the test.
func NewHarness(t testing.TB, setup func(h *Harness), opts ...HarnessOption) *Harness {
	t.Helper()
	o := harnessOptions{partitions: 1, startTimeout: 30 * time.Second, logLevel: slog.LevelWarn}
	for _, opt := range opts {
		opt(&o)
	}
	h := &Harness{t: t, done: make(chan error, 1)}
	name := "kafkatest"
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		h.Brokers = strings.Split(v, ",")
		h.suffix = fmt.Sprintf("-%d-%04d", time.Now().UnixNano()%1e9, rand.IntN(10000))
		name += h.suffix
	} else {
		h.Broker = New(t)
		h.Brokers = h.Broker.Addrs()
	}

	logs := &testWriter{w: t.Output()}
	t.Cleanup(logs.stop) // registered first, runs last
	logger := kafkaevents.NewSlogLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: o.logLevel})))

	cfg := kafkaevents.Config{
		ClientID: name,
		Brokers:  h.Brokers,
		Consumer: kafkaevents.ConsumerConfig{
			HeartbeatInterval: HeartbeatInterval,
			SessionTimeout:    SessionTimeout,
			CommitInterval:    CommitInterval,
			RebalanceTimeout:  5 * time.Second,
			ShutdownTimeout:   5 * time.Second,
			MaxWaitTime:       50 * time.Millisecond,
		},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Retry:         kafkaevents.RetryConfig{BaseDelay: RetryBaseDelay, MaxDelay: RetryMaxDelay, Partitions: 1},
		DLQ:           kafkaevents.DLQConfig{Partitions: 1},
	}
	for _, fn := range o.configure {
		fn(&cfg)
	}

	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.ClientID = name + "-test"
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Consumer.MaxWaitTime = 50 * time.Millisecond
	var err error
	if h.client, err = sarama.NewClient(h.Brokers, sc); err != nil {
		t.Fatalf("kafkatest: connect to %s: %v", strings.Join(h.Brokers, ","), err)
	}
	t.Cleanup(func() { _ = h.client.Close() })
	if h.sync, err = sarama.NewSyncProducerFromClient(h.client); err != nil {
		t.Fatalf("kafkatest: producer: %v", err)
	}
	t.Cleanup(func() { _ = h.sync.Close() })
	t.Cleanup(h.deleteRunNames) // after stop, before the client closes

	h.Stack, err = kafkaevents.New(cfg, append([]kafkaevents.Option{kafkaevents.WithLogger(logger)}, o.stackOptions...)...)
	if err != nil {
		t.Fatalf("kafkatest: build the stack: %v", err)
	}
	h.Router, err = message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		_ = h.Stack.Close()
		t.Fatalf("kafkatest: router: %v", err)
	}
	h.Stack.Install(h.Router)
	if setup != nil {
		setup(h)
	}
	h.createTopics(o.partitions)

	go func() { h.done <- h.Router.Run(context.Background()) }()
	t.Cleanup(h.stop) // registered last, runs first
	h.waitReady(o.startTimeout)
	return h
}

// stop closes the router, waits for it, and closes the stack.
func (h *Harness) stop() {
	_ = h.Router.Close()
	if err := <-h.done; err != nil {
		h.t.Errorf("kafkatest: router: %v", err)
	}
	if err := h.Stack.Close(); err != nil {
		h.t.Errorf("kafkatest: close the stack: %v", err)
	}
}

// groupDeleteWait bounds how long deleteRunNames retries a consumer group
// that still has members: the stack's consumers leave their groups when it
// closes, and a broker can take a moment to see it.
const groupDeleteWait = 5 * time.Second

// deleteRunNames deletes, on real Kafka, the topics and consumer groups whose
// names carry the run's suffix. Failures are logged, not reported as test
// failures: the test itself has passed or failed by then.
func (h *Harness) deleteRunNames() {
	if h.suffix == "" {
		return
	}
	admin, err := sarama.NewClusterAdminFromClient(h.client)
	if err != nil {
		h.t.Logf("kafkatest: delete the topics of the run: admin client: %v", err)
		return
	}
	// Not admin.Close: it would close the harness's client.
	if topics, err := admin.ListTopics(); err != nil {
		h.t.Logf("kafkatest: delete the topics of the run: list topics: %v", err)
	} else {
		for _, topic := range slices.Sorted(maps.Keys(topics)) {
			if !strings.Contains(topic, h.suffix) {
				continue
			}
			if err := admin.DeleteTopic(topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				h.t.Logf("kafkatest: delete topic %s: %v", topic, err)
			}
		}
	}
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		h.t.Logf("kafkatest: delete the consumer groups of the run: list groups: %v", err)
		return
	}
	deadline := time.Now().Add(groupDeleteWait)
	for _, group := range slices.Sorted(maps.Keys(groups)) {
		if !strings.Contains(group, h.suffix) {
			continue
		}
		for {
			err := admin.DeleteConsumerGroup(group)
			if errors.Is(err, sarama.ErrNonEmptyGroup) && time.Now().Before(deadline) {
				<-time.After(100 * time.Millisecond)
				continue
			}
			if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
				h.t.Logf("kafkatest: delete consumer group %s: %v", group, err)
			}
			break
		}
	}
}

// Topic returns the name a topic has in this run: name itself on the
// embedded broker, name with the run's suffix on real Kafka.
func (h *Harness) Topic(name string) string { return name + h.suffix }

// AddHandler registers h as handlerID for topic (h.Topic(topic)) with
// Stack.AddHandler and fails the test on an error. Call it from the setup
// function of NewHarness.
func (h *Harness) AddHandler(topic, handlerID string, fn message.NoPublishHandlerFunc, opts ...kafkaevents.HandlerOption) *message.Handler {
	h.t.Helper()
	handler, err := h.Stack.AddHandler(h.Router, h.Topic(topic), handlerID, fn, opts...)
	if err != nil {
		h.t.Fatalf("kafkatest: AddHandler(%q, %q): %v", topic, handlerID, err)
	}
	h.topics = append(h.topics, h.Topic(topic))
	return handler
}

func (h *Harness) createTopics(partitions int32) {
	h.t.Helper()
	if len(h.topics) == 0 {
		return
	}
	admin, err := sarama.NewClusterAdminFromClient(h.client)
	if err != nil {
		h.t.Fatalf("kafkatest: admin client: %v", err)
	}
	// Not admin.Close: it would close the harness's client.
	for _, topic := range h.topics {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			h.t.Fatalf("kafkatest: create topic %s: %v", topic, err)
		}
	}
}

// waitReady waits until the router runs, Stack.Readiness passes, and every
// partition of the handled and the retry topics is assigned to a member of
// its group.
func (h *Harness) waitReady(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	select {
	case <-h.Router.Running():
	case err := <-h.done:
		h.done <- err
		h.t.Fatalf("kafkatest: the router stopped at start: %v", err)
	case <-time.After(timeout):
		h.t.Fatalf("kafkatest: the router did not start within %s", timeout)
	}
	admin, err := sarama.NewClusterAdminFromClient(h.client)
	if err != nil {
		h.t.Fatalf("kafkatest: admin client: %v", err)
	}
	cfg := h.Stack.Config()
	groups := map[string][]string{}
	handlers := h.Stack.Handlers()
	for i := range handlers {
		if p := handlers[i].Pattern; p != "" {
			groups[cfg.Consumer.GroupID] = append(groups[cfg.Consumer.GroupID], p)
		}
	}
	if topics := h.Stack.RetryTopics(); len(topics) > 0 {
		groups[cfg.Consumer.GroupID+".retry"] = topics
	}
	var last string
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r := h.Stack.Readiness(ctx)
		cancel()
		if !r.Ready() {
			last = fmt.Sprintf("readiness: %v", r.Errors)
		} else if last = h.unassigned(admin, groups); last == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("kafkatest: not ready within %s: %s", timeout, last)
		}
		<-poll.C
	}
}

// unassigned describes the partitions of groups (group -> topics) that no
// member of the group holds, or returns "" when every one is held.
func (h *Harness) unassigned(admin sarama.ClusterAdmin, groups map[string][]string) string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	desc, err := admin.DescribeConsumerGroups(names)
	if err != nil {
		return err.Error()
	}
	for _, g := range desc {
		if g.State != "Stable" {
			return fmt.Sprintf("group %s is %s", g.GroupId, g.State)
		}
		held := map[string]map[int32]bool{}
		for _, m := range g.Members {
			a, err := m.GetMemberAssignment()
			if err != nil || a == nil {
				continue
			}
			for topic, parts := range a.Topics {
				if held[topic] == nil {
					held[topic] = map[int32]bool{}
				}
				for _, p := range parts {
					held[topic][p] = true
				}
			}
		}
		for _, topic := range groups[g.GroupId] {
			parts, err := h.client.Partitions(topic)
			if err != nil {
				_ = h.client.RefreshMetadata(topic)
				return fmt.Sprintf("topic %s: %v", topic, err)
			}
			for _, p := range parts {
				if !held[topic][p] {
					return fmt.Sprintf("group %s: %s/%d is not assigned", g.GroupId, topic, p)
				}
			}
		}
	}
	return ""
}

// Record is a record read from a topic, flattened for assertions.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Headers   map[string]string
	Timestamp time.Time
}

func (r Record) String() string {
	return fmt.Sprintf("%s/%d@%d key=%q value=%.60q headers=%v", r.Topic, r.Partition, r.Offset, r.Key, r.Value, r.Headers)
}

// DeadLetter is a record in the DLQ.
type DeadLetter struct {
	Record
	// Reason is why it is there (header x-dlq-reason).
	Reason wire.Reason
	// Error is the handler's last error (header x-error-message).
	Error string
}

// Send writes a record with this key (none when empty) and value to topic
// (h.Topic(topic)) and waits for the broker's acknowledgement. It fails the
// test on an error.
func (h *Harness) Send(topic, key, value string) {
	h.t.Helper()
	h.SendRecord(Record{Topic: topic, Key: key, Value: value})
}

// SendRecord writes r (its Topic, Key, Value and Headers) to h.Topic(r.Topic)
// and waits for the broker's acknowledgement. It fails the test on an error.
func (h *Harness) SendRecord(r Record) {
	h.t.Helper()
	msg := &sarama.ProducerMessage{Topic: h.Topic(r.Topic), Value: sarama.StringEncoder(r.Value)}
	if r.Key != "" {
		msg.Key = sarama.StringEncoder(r.Key)
	}
	for k, v := range r.Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	if _, _, err := h.sync.SendMessage(msg); err != nil {
		h.t.Fatalf("kafkatest: send to %s: %v", msg.Topic, err)
	}
}

// Read reads topic (h.Topic(topic)) from its start and returns the first n
// records it reads (by partition, then offset), waiting at most timeout for
// them. It fails the test with the records it saw when fewer arrive.
func (h *Harness) Read(topic string, n int, timeout time.Duration) []Record {
	h.t.Helper()
	return h.scan([]string{h.Topic(topic)}, n, timeout, fmt.Sprintf("%d records on %s", n, h.Topic(topic)), nil)
}

// WaitDLQ waits at most timeout for a record of topic (h.Topic(topic)) to
// reach the DLQ, and returns the first one with its reason and headers. It
// fails the test with the DLQ records it saw when none arrives.
func (h *Harness) WaitDLQ(topic string, timeout time.Duration) DeadLetter {
	h.t.Helper()
	return h.ReadDLQ(topic, 1, timeout)[0]
}

// ReadDLQ waits at most timeout until n records of topic (h.Topic(topic))
// are in the DLQ, and returns the first n, in the order they were stored
// (the DLQ has one partition unless Configure says otherwise). It fails the
// test with the DLQ records it saw when fewer arrive.
func (h *Harness) ReadDLQ(topic string, n int, timeout time.Duration) []DeadLetter {
	h.t.Helper()
	want := h.Topic(topic)
	what := "a DLQ record of " + want
	if n != 1 {
		what = fmt.Sprintf("%d DLQ records of %s", n, want)
	}
	rs := h.scan([]string{h.Stack.DLQTopic()}, n, timeout, what, func(r Record) bool {
		return r.Headers[wire.HeaderOriginalTopic] == want
	})
	out := make([]DeadLetter, len(rs))
	for i, r := range rs {
		out[i] = DeadLetter{
			Record: r,
			Reason: wire.Reason(r.Headers[wire.HeaderDLQReason]),
			Error:  r.Headers[wire.HeaderErrorMessage],
		}
	}
	return out
}

// WaitRetries waits at most timeout until k retry records of key were
// written to the retry topics, and returns the first k, by attempt
// (x-retry-count). It fails the test with the retry records it saw when
// fewer arrive.
func (h *Harness) WaitRetries(key string, k int, timeout time.Duration) []Record {
	h.t.Helper()
	topics := h.Stack.RetryTopics()
	if len(topics) == 0 {
		h.t.Fatalf("kafkatest: WaitRetries: retries are off")
	}
	rs := h.scan(topics, k, timeout, fmt.Sprintf("%d retries of key %q", k, key), func(r Record) bool { return r.Key == key })
	slices.SortStableFunc(rs, func(a, b Record) int {
		return strings.Compare(fmt.Sprintf("%09s", a.Headers[wire.HeaderRetryCount]), fmt.Sprintf("%09s", b.Headers[wire.HeaderRetryCount]))
	})
	return rs
}

// scan reads topics from their start until n records match (all match when
// match is nil) and returns the first n matches; at timeout it fails the
// test with what it saw.
func (h *Harness) scan(topics []string, n int, timeout time.Duration, what string, match func(Record) bool) []Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	consumer, err := sarama.NewConsumerFromClient(h.client)
	if err != nil {
		h.t.Fatalf("kafkatest: consumer: %v", err)
	}
	defer consumer.Close()
	records := make(chan Record)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	started := map[string]bool{}
	var seen, matched []Record
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		for _, topic := range topics {
			if started[topic] {
				continue
			}
			parts, err := h.client.Partitions(topic)
			if err != nil || len(parts) == 0 {
				_ = h.client.RefreshMetadata(topic)
				continue
			}
			started[topic] = true
			for _, p := range parts {
				pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					h.t.Fatalf("kafkatest: read %s/%d: %v", topic, p, err)
				}
				wg.Go(func() {
					defer pc.Close()
					for {
						select {
						case <-ctx.Done():
							return
						case m := <-pc.Messages():
							select {
							case records <- toRecord(m):
							case <-ctx.Done():
								return
							}
						}
					}
				})
			}
		}
		select {
		case r := <-records:
			seen = append(seen, r)
			if match == nil || match(r) {
				matched = append(matched, r)
			}
			if len(matched) >= n {
				return matched[:n]
			}
		case <-poll.C:
		case <-ctx.Done():
			h.t.Fatalf("kafkatest: waited %s for %s; saw %s", timeout, what, describe(seen, topics, started))
			return nil
		}
	}
}

func toRecord(m *sarama.ConsumerMessage) Record {
	r := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value), Headers: map[string]string{}, Timestamp: m.Timestamp}
	for _, hd := range m.Headers {
		r.Headers[string(hd.Key)] = string(hd.Value)
	}
	return r
}

func describe(seen []Record, topics []string, started map[string]bool) string {
	var b strings.Builder
	for _, t := range topics {
		if !started[t] {
			fmt.Fprintf(&b, "(topic %s does not exist) ", t)
		}
	}
	if len(seen) == 0 {
		b.WriteString("no record")
		return b.String()
	}
	fmt.Fprintf(&b, "%d records:", len(seen))
	for i, r := range seen {
		if i == 20 {
			fmt.Fprintf(&b, "\n\t... and %d more", len(seen)-20)
			break
		}
		b.WriteString("\n\t" + r.String())
	}
	return b.String()
}

// testWriter writes the logs to the test's output until the test ends.
type testWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
