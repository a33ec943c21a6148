package kafkatest_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

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
