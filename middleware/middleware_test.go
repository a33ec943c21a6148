package middleware_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/middleware"
	"github.com/torix/kafkaevents/wire"
)

func TestRecoverPanicsTurnsPanicIntoError(t *testing.T) {
	h := middleware.RecoverPanics(func(*message.Message) ([]*message.Message, error) { panic("kaboom") })
	out, err := h(message.NewMessage("1", nil))
	assert.Nil(t, out)
	var pe *wire.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "panic: kaboom", err.Error())
	assert.NotEmpty(t, pe.Stack)
	assert.True(t, wire.IsRetryable(err))
}

func TestRejectUndecodable(t *testing.T) {
	called := false
	h := middleware.RejectUndecodable(func(*message.Message) ([]*message.Message, error) {
		called = true
		return nil, nil
	})
	msg := message.NewMessage("1", []byte("x"))
	msg.Metadata.Set(wire.HeaderUnmarshalError, "unmarshal: bad")
	_, err := h(msg)
	r, _ := wire.ReasonOf(err)
	assert.Equal(t, wire.ReasonUndecodable, r)
	assert.False(t, called)
	_, err = h(message.NewMessage("2", []byte("x")))
	assert.NoError(t, err)
	assert.True(t, called)
}

func TestGuardRejectsUndecodableAndRecovers(t *testing.T) {
	calls := 0
	h := middleware.Guard(func(msg *message.Message) ([]*message.Message, error) {
		calls++
		if string(msg.Payload) == "panic" {
			panic("kaboom")
		}
		return []*message.Message{msg}, nil
	})

	bad := message.NewMessage("1", []byte("x"))
	bad.Metadata.Set(wire.HeaderUnmarshalError, "unmarshal: bad")
	out, err := h(bad)
	r, _ := wire.ReasonOf(err)
	assert.Equal(t, wire.ReasonUndecodable, r)
	assert.Contains(t, err.Error(), "unmarshal: bad")
	assert.Nil(t, out)
	assert.Zero(t, calls, "an undecodable message never reaches the handler")

	out, err = h(message.NewMessage("2", []byte("panic")))
	var pe *wire.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "panic: kaboom", err.Error())
	assert.NotEmpty(t, pe.Stack)
	assert.Nil(t, out, "a panic returns no messages")
	assert.True(t, wire.IsRetryable(err))

	out, err = h(message.NewMessage("3", []byte("ok")))
	require.NoError(t, err)
	assert.Len(t, out, 1)
	assert.Equal(t, 2, calls)
}
