package kafkaevents

import (
	"context"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/internal/consume"
	"github.com/torix/kafkaevents/internal/growstack"
)

// deepCall uses about 4 KiB of stack.
//
//go:noinline
func deepCall(depth int) byte {
	var buf [512]byte
	buf[depth] = byte(depth)
	if depth == 0 {
		return buf[0]
	}
	return deepCall(depth-1) + buf[depth]
}

// TestStackGrowsAtTheEntryForHandlersThatNeedIt runs each message in a new
// goroutine, as Watermill's router does: once a handler needed more stack
// than its goroutine started with, the next messages get it at the entry of
// the chain and the handler's own frames are not moved any more; a handler
// that never needed more is left alone, the entry's own frame included.
func TestStackGrowsAtTheEntryForHandlersThatNeedIt(t *testing.T) {
	s := &Stack{subscriber: &consume.Subscriber{}}
	run := func(h message.HandlerFunc) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = h(message.NewMessage("m", nil))
		}()
		wg.Wait()
	}

	var moved []bool
	deep := s.enter(func(*message.Message) ([]*message.Message, error) {
		var mark uintptr
		at := growstack.Pos(&mark)
		deepCall(7)
		moved = append(moved, growstack.Pos(&mark) != at)
		return nil, nil
	})
	for range growstack.DecideEvery + 8*growstack.ProbeEvery {
		run(deep)
	}
	learnt, moves := moved[growstack.DecideEvery:], 0
	for _, m := range learnt {
		if m {
			moves++
		}
	}
	// Only the probes, one message in ProbeEvery, grow it themselves (and
	// now and then a preemption, which needs room too).
	if moves > len(learnt)/4 {
		t.Errorf("after %d messages, the handler's stack still grew under %d of the next %d", growstack.DecideEvery, moves, len(learnt))
	}

	shallow := &Stack{subscriber: &consume.Subscriber{}}
	var grew []bool
	noop := shallow.enter(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	for range 2 * growstack.DecideEvery {
		run(func(msg *message.Message) ([]*message.Message, error) {
			var mark uintptr
			at := growstack.Pos(&mark)
			out, err := noop(msg)
			grew = append(grew, growstack.Pos(&mark) != at)
			return out, err
		})
	}
	// Grown at the entry, every message would have moved; now and then
	// one does on its own (a preemption needs room too).
	n := 0
	for _, g := range grew {
		if g {
			n++
		}
	}
	if n > len(grew)/4 {
		t.Errorf("a handler that fits its stack had it grown for %d of %d messages", n, len(grew))
	}
}

type handlerKey struct{}

// TestEnterStampsOutputs: the messages a handler returns get the
// correlation ID of the message it handled, from its header or generated,
// unless they carry one.
func TestEnterStampsOutputs(t *testing.T) {
	s := &Stack{subscriber: &consume.Subscriber{}}
	var seen string
	h := s.enter(func(msg *message.Message) ([]*message.Message, error) {
		seen = correlation.FromContext(msg.Context())
		msg.SetContext(context.WithValue(msg.Context(), handlerKey{}, 1)) // a handler may derive a new context
		own := message.NewMessage("own", nil)
		own.Metadata.Set(correlation.Header, "corr-own")
		return []*message.Message{message.NewMessage("plain", nil), own}, nil
	})

	in := message.NewMessage("in", nil)
	in.Metadata.Set(correlation.Header, "corr-in")
	out, err := h(in)
	require.NoError(t, err)
	assert.Equal(t, "corr-in", out[0].Metadata.Get(correlation.Header))
	assert.Equal(t, "corr-own", out[1].Metadata.Get(correlation.Header), "an output's own ID is kept")

	out, err = h(message.NewMessage("no-id", nil))
	require.NoError(t, err)
	assert.Regexp(t, `^corr-`, seen, "an ID was generated for the handler")
	assert.Equal(t, seen, out[0].Metadata.Get(correlation.Header), "and stamped on its outputs")
}
