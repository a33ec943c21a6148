package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// TestBrokerRefusesProduce makes the embedded broker (in process, for its
// fault injection) refuse produce requests to the retry lanes, the DLQ and
// the handler's output topic while messages fail and are retried. A refused
// hand-off must lead to a redelivery, never to a loss: every message ends
// handled or dead-lettered. Refusals that the broker applies and still
// answers with an error (REQUEST_TIMED_OUT) make the producer write twice;
// those duplicates are counted.
func TestBrokerRefusesProduce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		target string // "retry", "dlq" or "output"
		err    *kerr.Error
		count  int
	}{
		{"retry hand-off refused", "retry", kerr.NotEnoughReplicas, 24},
		{"DLQ hand-off refused", "dlq", kerr.NotEnoughReplicas, 24},
		// A refusal hits a produce request, which the handlers' concurrent
		// Sends share (Producer.Linger), and sarama tries a request 4 times
		// before a Send fails: 8 refusals fail at most two of a message's
		// three attempts, so every message that does not always fail is
		// still handled.
		{"handler output refused", "output", kerr.NotEnoughReplicas, 8},
		{"retry hand-off applied but answered REQUEST_TIMED_OUT", "retry", kerr.RequestTimedOut, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			started := time.Now()
			broker := kafkatest.New(t)
			name := uniq("chaos-fault")
			input, output := name+".in", name+".out"
			n := size(100, 1000)

			var mu sync.Mutex
			handled := map[string]int{} // payload -> successful deliveries
			cfg := kafkaevents.Config{
				ClientID: name, Brokers: broker.Addrs(),
				Consumer:      kafkaevents.ConsumerConfig{GroupID: name + "-group", MaxWaitTime: 100 * time.Millisecond},
				Subscriptions: kafkaevents.SubscriptionConfig{FromBeginning: kafkaevents.Bool(true)},
				Retry:         kafkaevents.RetryConfig{Attempts: 2, BaseDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
				// sarama's transaction manager (v1.61.1) reads its last
				// error without the lock it is written under when a
				// record of a transaction is refused: the race detector
				// reports it. The hand-offs here are the at-least-once
				// ones under -race; without it, the exactly-once ones.
				Producer: kafkaevents.ProducerConfig{ExactlyOnceHandoffs: kafkaevents.Bool(!raceEnabled)},
			}
			stack, router := startStack(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, input, "Fault.handle", func(msg *message.Message) error {
					id := string(msg.Payload)
					i, _ := strconv.Atoi(id[len("m-"):])
					d := wire.DeliveryOf(msg)
					switch {
					case i%10 == 0: // always fails: retries, then the DLQ
						return errors.New("always fails")
					case i%2 == 0 && d.RetryCount == 0: // fails once: a retry
						return errors.New("fails once")
					}
					if _, err := s.Producer().Send(msg.Context(), kafkaevents.Message{Topic: output, Key: id, Value: id}); err != nil {
						return err
					}
					mu.Lock()
					handled[id]++
					mu.Unlock()
					return nil
				})
				require.NoError(t, err)
			})
			_ = router

			topic := output
			switch tc.target {
			case "retry":
				topic = stack.RetryTopics()[0]
			case "dlq":
				topic = stack.DLQTopic()
			}
			fault := broker.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: tc.err, Count: tc.count})

			p, err := sarama.NewSyncProducer(broker.Addrs(), (&cluster{}).saramaConfig())
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			msgs := make([]*sarama.ProducerMessage, n)
			for i := range msgs {
				id := fmt.Sprintf("m-%d", i)
				msgs[i] = &sarama.ProducerMessage{Topic: input, Key: sarama.StringEncoder(id), Value: sarama.StringEncoder(id)}
			}
			require.NoError(t, p.SendMessages(msgs))

			dead := readAll(t, broker.Addrs(), stack.DLQTopic())
			deadline := time.Now().Add(2 * time.Minute)
			for {
				mu.Lock()
				done := 0
				for i := range n {
					id := fmt.Sprintf("m-%d", i)
					if handled[id] > 0 || dead.count(id) > 0 {
						done++
					}
				}
				mu.Unlock()
				if done == n {
					break
				}
				require.False(t, time.Now().After(deadline), "%d of %d messages settled; fault hits %d", done, n, fault.Hits())
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second) // late duplicates

			mu.Lock()
			defer mu.Unlock()
			lost, dups, wrong := 0, 0, 0
			for i := range n {
				id := fmt.Sprintf("m-%d", i)
				h, d := handled[id], dead.count(id)
				switch {
				case h == 0 && d == 0:
					lost++
				case h+d > 1:
					dups += h + d - 1
				}
				if (i%10 == 0) != (d > 0) {
					wrong++
				}
			}
			report(t, result{
				Scenario: "produce-refused/" + tc.target + "/" + tc.err.Message, Broker: "embedded (in process)",
				Injected: fmt.Sprintf("%d produce requests to the %s topic answered %s (%d hit)", tc.count, tc.target, tc.err.Message, fault.Hits()),
				tally:    tally{Orders: n, Processed: len(handled), DeadLettered: dead.distinct(), Lost: lost, Duplicates: dups, Misrouted: wrong},
				Took:     time.Since(started).Round(time.Millisecond).String(),
			})
			assert.Equal(t, tc.count, fault.Hits(), "every injected refusal was hit")
			assert.Zero(t, lost, "lost messages")
			assert.Zero(t, wrong, "messages with the wrong outcome")
			if tc.err == kerr.NotEnoughReplicas {
				assert.Zero(t, dups, "a refused (not applied) produce must not duplicate anything")
			}
		})
	}
}

// startStack runs the library in process with a router, as a service would.
func startStack(t *testing.T, cfg kafkaevents.Config, setup func(*kafkaevents.Stack, *message.Router)) (*kafkaevents.Stack, *message.Router) {
	t.Helper()
	logger := watermill.NopLogger{}
	s, err := kafkaevents.New(cfg, kafkaevents.WithLogger(logger))
	require.NoError(t, err)
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	require.NoError(t, err)
	s.Install(r)
	setup(s, r)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case <-r.Running():
	case err := <-done:
		_ = s.Close()
		t.Fatalf("router stopped at start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		_ = r.Close()
		<-done
		_ = s.Close()
	})
	return s, r
}

// topicReader reads every partition of a topic from the oldest record and
// counts the records by value.
type topicReader struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *topicReader) count(v string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[v]
}

func (r *topicReader) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

func readAll(t *testing.T, brokers []string, topic string) *topicReader {
	t.Helper()
	r := &topicReader{counts: map[string]int{}}
	(&cluster{Brokers: brokers}).readFromStart(t, func(m *sarama.ConsumerMessage) {
		r.mu.Lock()
		r.counts[string(m.Value)]++
		r.mu.Unlock()
	}, topic)
	return r
}
