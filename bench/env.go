package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// env is the broker the figures run against: the embedded one (in this
// process) or the real Kafka named by KAFKA_BROKERS.
type env struct {
	brokers    []string
	real       bool
	broker     *kafkatest.Broker
	partitions int32
	run        string
	seq        atomic.Int64
}

func newEnv(partitions int32) (*env, error) {
	e := &env{partitions: partitions, run: strconv.FormatInt(time.Now().Unix()%1e6, 36) + strconv.Itoa(rand.IntN(1000))}
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		e.brokers, e.real = strings.Split(v, ","), true
		return e, nil
	}
	b, err := kafkatest.Start(kafkatest.Partitions(partitions))
	if err != nil {
		return nil, err
	}
	e.broker, e.brokers = b, b.Addrs()
	return e, nil
}

func (e *env) close() {
	if e.broker != nil {
		e.broker.Close()
	}
}

func (e *env) kind() string {
	if e.real {
		return "real Kafka at " + strings.Join(e.brokers, ",")
	}
	return fmt.Sprintf("embedded broker (kafkatest, in process, %d partitions per topic)", e.partitions)
}

// name returns a topic, group or service name unique to this harness run, so
// runs never share anything on a real broker.
func (e *env) name(base string) string {
	return fmt.Sprintf("bench-%s-%s-%d", base, e.run, e.seq.Add(1))
}

// saramaConfig is the configuration of the raw clients: the same settings
// as the stack's (kafkaevents defaults), so that a figure compares code paths,
// not client settings.
func (e *env) saramaConfig(clientID string) (*sarama.Config, error) {
	cfg := kafkaevents.Config{ClientID: clientID, Brokers: e.brokers, Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)}}
	return cfg.Sarama()
}

// stackConfig is the configuration of a stack for one measurement: a unique
// service (hence unique retry and DLQ topics) and consumer group, reading
// from the oldest offset, kafkaevents defaults otherwise.
func (e *env) stackConfig(base string) kafkaevents.Config {
	svc := e.name(base)
	return kafkaevents.Config{
		ClientID:      svc,
		ServiceName:   svc,
		Brokers:       e.brokers,
		LogLevel:      "error",
		Consumer:      kafkaevents.ConsumerConfig{GroupID: svc + "-group"},
		Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
		Retry:         kafkaevents.RetryConfig{Partitions: e.partitions},
		DLQ:           kafkaevents.DLQConfig{Partitions: e.partitions},
	}
}

// createTopics creates the topics with the env's partition count and waits
// until the metadata shows them.
func (e *env) createTopics(names ...string) error {
	sc, err := e.saramaConfig(e.name("admin"))
	if err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdmin(e.brokers, sc)
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close() }()
	for _, n := range names {
		err := admin.CreateTopic(n, &sarama.TopicDetail{NumPartitions: e.partitions, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", n, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := admin.DescribeTopics(names)
		ok := err == nil
		for _, m := range meta {
			if m.Err != sarama.ErrNoError || len(m.Partitions) != int(e.partitions) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not visible after 30s", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// record is what produce writes: value, key and headers.
type record struct {
	key     string
	value   []byte
	headers []sarama.RecordHeader
}

// produce writes n records built by gen to topic with a raw sarama
// AsyncProducer (round-robin over the partitions) and waits for every
// acknowledgement.
func (e *env) produce(topic string, n int, gen func(i int) record) error {
	return e.produceWith(topic, n, gen, sarama.NewRoundRobinPartitioner)
}

// produceWith is produce with the partitioner given.
func (e *env) produceWith(topic string, n int, gen func(i int) record, partitioner sarama.PartitionerConstructor) error {
	sc, err := e.saramaConfig(e.name("fill"))
	if err != nil {
		return err
	}
	sc.Producer.Partitioner = partitioner
	p, err := sarama.NewAsyncProducer(e.brokers, sc)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		var first error
		for i := 0; i < n; i++ {
			select {
			case <-p.Successes():
			case perr := <-p.Errors():
				if first == nil {
					first = perr
				}
			}
		}
		errc <- first
	}()
	for i := range n {
		r := gen(i)
		pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.value), Headers: r.headers}
		if r.key != "" {
			pm.Key = sarama.StringEncoder(r.key)
		}
		p.Input() <- pm
	}
	err = <-errc
	return errors.Join(err, p.Close())
}

// payload returns a size-byte JSON-looking payload for message i.
func payload(i, size int) []byte {
	head := `{"orderId":"order-` + strconv.Itoa(i) + `","note":"`
	b := make([]byte, 0, size)
	b = append(b, head...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// event is a record as a kafkaevents producer writes it: a key, a 1 KiB-ish
// payload and a correlation ID header.
func event(i, size int) record {
	return record{
		key:     "order-" + strconv.Itoa(i),
		value:   payload(i, size),
		headers: []sarama.RecordHeader{{Key: []byte(wire.HeaderCorrelationID), Value: []byte("corr-bench-" + strconv.Itoa(i))}},
	}
}

// runRouter runs r in the background and waits until it runs. stop closes
// the router and waits for Run to return.
func runRouter(r *message.Router) (stop func(), err error) {
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case <-r.Running():
	case err := <-done:
		return nil, fmt.Errorf("router stopped at start: %w", err)
	case <-time.After(60 * time.Second):
		_ = r.Close()
		return nil, errors.New("router did not start within 60s")
	}
	return func() {
		_ = r.Close()
		if err := <-done; err != nil {
			fmt.Println("router:", err)
		}
	}, nil
}

func newRouter() (*message.Router, error) {
	return message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
}

// waitFor polls cond every 5ms until it holds or timeout passes.
func waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
