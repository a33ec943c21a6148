package kafkaevents_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/kafkatest"
)

// A retry scheduled and a record dead-lettered each write one INFO line that
// names the handler, the topic, the attempt, the reason and the correlation
// ID.
func TestFailuresAreLoggedAtInfo(t *testing.T) {
	logs := watermill.NewCaptureLogger()
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("orders", "Orders.handle", func(*message.Message) error {
			return errors.New("stock service timed out")
		})
	}, kafkatest.Configure(func(cfg *kafkaevents.Config) { cfg.Retry.Attempts = 1 }),
		kafkatest.StackOptions(kafkaevents.WithLogger(logs)))

	h.SendRecord(kafkatest.Record{Topic: "orders", Key: "o-1", Value: "{}", Headers: map[string]string{correlation.Header: "corr-42"}})
	h.WaitDLQ("orders", 10*time.Second)

	find := func(msg string) watermill.LogFields {
		var found watermill.LogFields
		require.Eventually(t, func() bool {
			for _, m := range logs.Captured()[watermill.InfoLogLevel] {
				if m.Msg == msg {
					found = m.Fields
					return true
				}
			}
			return false
		}, 5*time.Second, 10*time.Millisecond, "no INFO line %q", msg)
		return found
	}
	retry := find("Retry scheduled")
	assert.Equal(t, "Orders.handle", retry["handler_id"])
	assert.Equal(t, h.Topic("orders"), retry["topic"])
	assert.Equal(t, 1, retry["attempt"])
	assert.Equal(t, "stock service timed out", retry["reason"])
	assert.Equal(t, "corr-42", retry["correlation_id"])

	dead := find("Message stored in the DLQ")
	assert.Equal(t, "Orders.handle", dead["handler_id"])
	assert.Equal(t, h.Topic("orders"), dead["topic"])
	assert.Equal(t, 1, dead["retry_count"])
	assert.Equal(t, "retries-exhausted", dead["reason"])
	assert.Equal(t, "stock service timed out", dead["error"])
	assert.Equal(t, "corr-42", dead["correlation_id"])
}
