package kafkatest_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// The two-handler test of docs/testing.md: one handler fails once and
// succeeds on its retry, the other's record is dead-lettered.
func TestHarnessTwoHandlers(t *testing.T) {
	start := time.Now()
	var charges atomic.Int32
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("payments.charge", "charge", func(msg *message.Message) error {
			if charges.Add(1) == 1 {
				return errors.New("provider timed out")
			}
			return nil
		})
		h.AddHandler("payments.refund", "refund", func(msg *message.Message) error {
			return errors.New("refund window closed")
		}, kafkaevents.WithoutRetry())
	})
	ready := time.Since(start)

	h.Send("payments.charge", "pay-1", `{"amount":42}`)
	h.Send("payments.refund", "ref-1", `{"amount":7}`)

	retries := h.WaitRetries("pay-1", 1, 5*time.Second)
	if got := retries[0].Headers[wire.HeaderRetryCount]; got != "1" {
		t.Errorf("retry count = %q, want 1", got)
	}
	dead := h.WaitDLQ("payments.refund", 5*time.Second)
	if dead.Reason != wire.ReasonRetryDisabled || dead.Key != "ref-1" || dead.Error != "refund window closed" {
		t.Errorf("DLQ record: reason %q, key %q, error %q", dead.Reason, dead.Key, dead.Error)
	}
	require.Eventually(t, func() bool { return charges.Load() == 2 }, 5*time.Second, 10*time.Millisecond,
		"charge ran %d times, want 2 (a failure and its retry)", charges.Load())
	t.Logf("ready after %s, both outcomes after %s", ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, so that a test can look at a harness's failure.
type fatalRecorder struct {
	*testing.T
	msg chan string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A wait that times out fails the test and says what it saw.
func TestHarnessWaitsSayWhatTheySaw(t *testing.T) {
	rec := &fatalRecorder{T: t, msg: make(chan string, 1)}
	h := kafkatest.NewHarness(rec, func(h *kafkatest.Harness) {
		h.AddHandler("payments.charge", "charge", func(*message.Message) error { return nil })
	})
	h.Send("payments.charge", "pay-1", `{"amount":42}`)

	for _, tc := range []struct {
		name string
		wait func()
		want []string
	}{
		{"Read", func() { h.Read("payments.charge", 2, 300*time.Millisecond) }, []string{"2 records on payments.charge", `key="pay-1"`}},
		{"WaitDLQ", func() { h.WaitDLQ("payments.charge", 300*time.Millisecond) }, []string{"a DLQ record of payments.charge", "no record"}},
		{"WaitRetries", func() { h.WaitRetries("pay-1", 1, 300*time.Millisecond) }, []string{`1 retries of key "pay-1"`, "no record"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() { defer close(done); tc.wait() }()
			<-done
			select {
			case msg := <-rec.msg:
				for _, w := range tc.want {
					require.Contains(t, msg, w)
				}
			default:
				t.Fatal("the wait did not fail")
			}
		})
	}
}

// WaitDLQ and ReadDLQ return only the DLQ records of the topic they name:
// with records of two topics in the DLQ, each wait gets its own, whichever
// was stored first.
func TestHarnessWaitDLQKeepsTopicsApart(t *testing.T) {
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("invoices.issue", "issue", func(msg *message.Message) error {
			return errors.New("issuer offline")
		}, kafkaevents.WithoutRetry())
		h.AddHandler("invoices.void", "void", func(msg *message.Message) error {
			return wire.Permanent(errors.New("already paid"))
		})
	})

	// The void records are stored first, so a wait that took any record
	// would return one of them for invoices.issue.
	h.Send("invoices.void", "void-1", `{}`)
	h.Send("invoices.void", "void-2", `{}`)
	voids := h.ReadDLQ("invoices.void", 2, 10*time.Second)
	h.Send("invoices.issue", "issue-1", `{}`)

	issued := h.WaitDLQ("invoices.issue", 10*time.Second)
	require.Equal(t, "issue-1", issued.Key)
	require.Equal(t, wire.ReasonRetryDisabled, issued.Reason)
	require.Equal(t, h.Topic("invoices.issue"), issued.Headers[wire.HeaderOriginalTopic])
	for _, d := range voids {
		require.Equal(t, wire.ReasonPermanent, d.Reason, "record %s", d.Key)
		require.Equal(t, h.Topic("invoices.void"), d.Headers[wire.HeaderOriginalTopic])
	}
	require.ElementsMatch(t, []string{"void-1", "void-2"}, []string{voids[0].Key, voids[1].Key})
}

// externalBrokers returns KAFKA_BROKERS, or, when it is unset, the addresses
// of an embedded broker exported as KAFKA_BROKERS, so that the harnesses of
// the test take it for real Kafka: names with the run's suffix, and topics
// and groups deleted at the end.
func externalBrokers(t *testing.T) []string {
	t.Helper()
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		return strings.Split(v, ",")
	}
	addrs := kafkatest.New(t).Addrs()
	t.Setenv("KAFKA_BROKERS", strings.Join(addrs, ","))
	return addrs
}

func clusterAdmin(t *testing.T, brokers []string) sarama.ClusterAdmin {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	return admin
}

// namesWith lists the topics and the consumer groups whose names contain s.
func namesWith(admin sarama.ClusterAdmin, s string) (topics, groups []string, err error) {
	all, err := admin.ListTopics()
	if err != nil {
		return nil, nil, err
	}
	for name := range all {
		if strings.Contains(name, s) {
			topics = append(topics, name)
		}
	}
	gs, err := admin.ListConsumerGroups()
	if err != nil {
		return nil, nil, err
	}
	for name := range gs {
		if strings.Contains(name, s) {
			groups = append(groups, name)
		}
	}
	return topics, groups, nil
}

// On real Kafka, the harness deletes the topics and consumer groups of its
// run when the test ends: the handled topic, a topic the handler wrote to,
// the retry and DLQ topics, and the groups of the handlers and of the retry
// consumer.
func TestHarnessDeletesItsTopicsAndGroupsOnRealKafka(t *testing.T) {
	admin := clusterAdmin(t, externalBrokers(t))

	var suffix string
	var created, groups []string
	t.Run("run", func(t *testing.T) {
		h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
			h.AddHandler("orders", "ship", func(msg *message.Message) error {
				if _, err := h.Stack.Producer().Send(msg.Context(), kafkaevents.Message{Topic: h.Topic("orders.shipped"), Value: msg.Payload}); err != nil {
					return err
				}
				return wire.Permanent(errors.New("out of stock"))
			})
		})
		require.Nil(t, h.Broker, "the harness runs as on real Kafka")
		suffix = strings.TrimPrefix(h.Topic("orders"), "orders")
		require.NotEmpty(t, suffix)

		h.Send("orders", "o-1", `{}`)
		h.Read("orders.shipped", 1, 10*time.Second)
		h.WaitDLQ("orders", 10*time.Second)

		var err error
		created, groups, err = namesWith(admin, suffix)
		require.NoError(t, err)
		want := append([]string{h.Topic("orders"), h.Topic("orders.shipped"), h.Stack.DLQTopic()}, h.Stack.RetryTopics()...)
		require.Subset(t, created, want)
		require.Contains(t, groups, h.Stack.Config().Consumer.GroupID)
	})
	require.NotEmpty(t, created, "the run created its topics")

	require.Eventually(t, func() bool {
		topics, groups, err := namesWith(admin, suffix)
		return err == nil && len(topics) == 0 && len(groups) == 0
	}, 30*time.Second, 100*time.Millisecond, "topics and groups of the run after its end (%d topics, groups %v were created)", len(created), groups)
}

// logRecorder is a *testing.T that keeps what is logged with Logf.
type logRecorder struct {
	*testing.T
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.T.Logf(format, args...)
}

// A deletion the broker refuses is logged; the test still passes. Embedded
// only: the broker refuses it on purpose.
func TestHarnessLogsARefusedDeletion(t *testing.T) {
	if os.Getenv("KAFKA_BROKERS") != "" {
		t.Skip("refuses deletions through the embedded broker's request interception")
	}
	broker := kafkatest.New(t)
	t.Setenv("KAFKA_BROKERS", strings.Join(broker.Addrs(), ","))
	c := broker.Cluster()
	c.ControlKey(int16(kmsg.DeleteTopics), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.DeleteTopicsRequest)
		resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
		names := append([]string(nil), req.TopicNames...)
		for _, tp := range req.Topics {
			if tp.Topic != nil {
				names = append(names, *tp.Topic)
			}
		}
		for _, name := range names {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic = kmsg.StringPtr(name)
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})

	var rec *logRecorder
	var topic string
	ok := t.Run("run", func(t *testing.T) {
		rec = &logRecorder{T: t}
		h := kafkatest.NewHarness(rec, func(h *kafkatest.Harness) {
			h.AddHandler("orders", "ship", func(*message.Message) error { return nil })
		})
		topic = h.Topic("orders")
	})
	require.True(t, ok, "a refused deletion does not fail the test")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Contains(t, strings.Join(rec.lines, "\n"), "kafkatest: delete topic "+topic+": "+sarama.ErrTopicAuthorizationFailed.Error())
}
