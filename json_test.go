package kafkaevents_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// TestJSONSaysWhyAPayloadDoesNotDecode: a payload that is not JSON is
// quoted (its first 32 bytes), an empty one is called empty, and JSON of
// another shape keeps encoding/json's field-level message; all are
// undecodable.
func TestJSONSaysWhyAPayloadDoesNotDecode(t *testing.T) {
	type order struct {
		Amount int `json:"amount"`
	}
	h := kafkaevents.JSON(func(context.Context, order) error { return nil })
	tests := []struct{ payload, want string }{
		{"hello", `the payload is not JSON (it starts "hello")`},
		{strings.Repeat("x", 40), `(it starts "` + strings.Repeat("x", 32) + `"...)`},
		{"", "the payload is empty, not JSON"},
		{`{"amount":"ten"}`, "cannot unmarshal string into Go struct field order.amount of type int"},
	}
	for _, tt := range tests {
		err := h(message.NewMessage("m", []byte(tt.payload)))
		assert.ErrorContains(t, err, tt.want, "payload %q", tt.payload)
		reason, _ := wire.ReasonOf(err)
		assert.Equal(t, wire.ReasonUndecodable, reason)
	}
}

// TestJSONHandlerSeesItsDelivery: a typed handler reads its delivery from
// the context: the first delivery, then the retry, with its attempt and
// source.
func TestJSONHandlerSeesItsDelivery(t *testing.T) {
	type order struct {
		ID string `json:"orderId"`
	}
	seen := make(chan wire.Delivery, 4)
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("orders", "Orders.typed", kafkaevents.JSON(func(ctx context.Context, o order) error {
			d := wire.DeliveryFromContext(ctx)
			seen <- d
			if d.RetryCount == 0 {
				return errors.New("first delivery fails")
			}
			return nil
		}))
	})
	h.Send("orders", "o-1", `{"orderId":"o-1"}`)
	for i, want := range []struct {
		retry  int
		source wire.Source
	}{{0, wire.SourceMain}, {1, wire.SourceRetry}} {
		select {
		case d := <-seen:
			assert.Equal(t, "Orders.typed", d.HandlerID, "delivery %d", i)
			assert.Equal(t, h.Topic("orders"), d.Topic, "delivery %d", i)
			assert.Equal(t, "o-1", string(d.Key), "delivery %d", i)
			assert.Equal(t, want.retry, d.RetryCount, "delivery %d", i)
			assert.Equal(t, want.source, d.Source, "delivery %d", i)
		case <-time.After(20 * time.Second):
			t.Fatalf("delivery %d did not come", i)
		}
	}
}
