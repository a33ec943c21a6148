package kafkaevents_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
)

// A handler added directly with router.AddConsumerHandler shows its topic in
// Handlers (GET /kafka/handlers) once it handled a record.
func TestHandlersLearnTheTopicOfADirectHandler(t *testing.T) {
	handled := make(chan struct{}, 1)
	var topic string
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		topic = h.Topic("ledger.entries")
		h.Router.AddConsumerHandler("Ledger.record", topic, h.Stack.Subscriber(), func(*message.Message) error {
			handled <- struct{}{}
			return nil
		})
		h.AddHandler("orders", "Orders.handle", func(*message.Message) error { return nil })
	})
	byID := func() map[string]kafkaevents.HandlerInfo {
		m := map[string]kafkaevents.HandlerInfo{}
		for _, hi := range h.Stack.Handlers() {
			m[hi.ID] = hi
		}
		return m
	}
	assert.Empty(t, byID()["Ledger.record"].Pattern, "unknown before its first delivery")
	h.Send("ledger.entries", "k", "v")
	select {
	case <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the direct handler got no record")
	}
	require.Eventually(t, func() bool { return byID()["Ledger.record"].Pattern == topic }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, h.Topic("orders"), byID()["Orders.handle"].Pattern)
}
