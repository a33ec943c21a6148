package wire_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"

	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/wire"
)

func explode() { panic("boom") }

// TestPanicStackStartsAtTheHandler: the stack of a recovered panic starts
// at the function that panicked, is bounded, and is "" for other errors.
func TestPanicStackStartsAtTheHandler(t *testing.T) {
	h := middleware.RecoverPanics(func(*message.Message) ([]*message.Message, error) {
		explode()
		return nil, nil
	})
	_, err := h(message.NewMessage("m", nil))
	stack := wire.PanicStack(fmt.Errorf("wrapped: %w", err), 4)
	lines := strings.Split(stack, "\n")
	assert.Len(t, lines, 4)
	assert.Contains(t, lines[0], "wire_test.explode", "the panicking function first:\n%s", stack)
	assert.Empty(t, wire.PanicStack(errors.New("plain"), 4))
}
