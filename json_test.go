package kafkaevents_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"

	"github.com/torix/kafkaevents"
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
