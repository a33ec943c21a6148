package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/middleware"
)

func TestReasonsAndClassification(t *testing.T) {
	base := errors.New("base")
	tests := []struct {
		name      string
		err       error
		reason    middleware.Reason
		hasReason bool
		retryable bool
	}{
		{"plain", base, "", false, true},
		{"permanent", middleware.Permanent(base), middleware.ReasonPermanent, true, false},
		{"wrapped permanent", fmt.Errorf("ctx: %w", middleware.Permanent(base)), middleware.ReasonPermanent, true, false},
		{"undecodable", middleware.Undecodable(base), middleware.ReasonUndecodable, true, false},
		{"panic", &middleware.PanicError{Value: "x"}, "", false, true},
		{"nil", nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := middleware.ReasonOf(tt.err)
			assert.Equal(t, tt.hasReason, ok)
			assert.Equal(t, tt.reason, r)
			assert.Equal(t, tt.retryable, middleware.IsRetryable(tt.err))
		})
	}
	assert.ErrorIs(t, middleware.Permanent(base), base, "the cause stays reachable")
	assert.NoError(t, middleware.Permanent(nil))
	for _, r := range middleware.Reasons {
		assert.True(t, r.Valid())
	}
	assert.False(t, middleware.Reason("bogus").Valid())
}

func TestTruncateError(t *testing.T) {
	short := "short"
	assert.Equal(t, short, middleware.TruncateError(short))
	long := strings.Repeat("é", middleware.MaxErrorMessageLen) // 2 bytes each
	got := middleware.TruncateError(long)
	assert.LessOrEqual(t, len(got), middleware.MaxErrorMessageLen)
	assert.True(t, utf8.ValidString(got), "cut on a rune boundary")
	assert.True(t, strings.HasSuffix(got, "…"))
}

func TestRecovererTurnsPanicIntoError(t *testing.T) {
	h := middleware.Recoverer(func(*message.Message) ([]*message.Message, error) { panic("kaboom") })
	out, err := h(message.NewMessage("1", nil))
	assert.Nil(t, out)
	var pe *middleware.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "panic: kaboom", err.Error())
	assert.NotEmpty(t, pe.Stack)
	assert.True(t, middleware.IsRetryable(err))
}

func TestRejectUndecodable(t *testing.T) {
	called := false
	h := middleware.RejectUndecodable(func(*message.Message) ([]*message.Message, error) {
		called = true
		return nil, nil
	})
	msg := message.NewMessage("1", []byte("x"))
	msg.Metadata.Set(middleware.HeaderUnmarshalError, "unmarshal: bad")
	_, err := h(msg)
	r, _ := middleware.ReasonOf(err)
	assert.Equal(t, middleware.ReasonUndecodable, r)
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
	bad.Metadata.Set(middleware.HeaderUnmarshalError, "unmarshal: bad")
	out, err := h(bad)
	r, _ := middleware.ReasonOf(err)
	assert.Equal(t, middleware.ReasonUndecodable, r)
	assert.Contains(t, err.Error(), "unmarshal: bad")
	assert.Nil(t, out)
	assert.Zero(t, calls, "an undecodable message never reaches the handler")

	out, err = h(message.NewMessage("2", []byte("panic")))
	var pe *middleware.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "panic: kaboom", err.Error())
	assert.NotEmpty(t, pe.Stack)
	assert.Nil(t, out, "a panic returns no messages")
	assert.True(t, middleware.IsRetryable(err))

	out, err = h(message.NewMessage("3", []byte("ok")))
	require.NoError(t, err)
	assert.Len(t, out, 1)
	assert.Equal(t, 2, calls)
}

func TestDeliveryOf(t *testing.T) {
	msg := message.NewMessage("1", nil)
	msg.Metadata.Set(middleware.HeaderReprocessCount, "2")
	d := middleware.DeliveryOf(msg)
	assert.Equal(t, middleware.SourceMain, d.Source)
	assert.Equal(t, 2, d.ReprocessCount)
	assert.False(t, d.HasOffset)
	assert.Equal(t, 0, middleware.RetryCountOf(msg), "a first delivery")

	var got middleware.Outcome
	want := middleware.Delivery{HandlerID: "h", Topic: "t", RetryCount: 2, Source: middleware.SourceRetry, Report: func(o middleware.Outcome) { got = o }}
	msg.SetContext(middleware.WithDelivery(context.Background(), want))
	d = middleware.DeliveryOf(msg)
	assert.Equal(t, "h", d.HandlerID)
	assert.Equal(t, 2, d.RetryCount)
	assert.Equal(t, 2, middleware.RetryCountOf(msg))
	assert.Equal(t, "retry", d.Source.String())
	middleware.Report(msg, middleware.Outcome{Kind: middleware.OutcomeRetried})
	assert.Equal(t, middleware.OutcomeRetried, got.Kind)

	assert.False(t, middleware.HandoffDisabled(context.Background()))
	assert.True(t, middleware.HandoffDisabled(middleware.WithoutHandoff(context.Background())))
}

func TestRecordHeaders(t *testing.T) {
	h := middleware.CopyHeaders(map[string]string{"keep": "1", middleware.HeaderRetryCount: "7"}, 4,
		func(k string) bool { return k == middleware.HeaderRetryCount })
	h.SetOrigin("uuid-1", "orders", true, 2, 42)
	h.Set(middleware.HeaderRetryCount, "1")
	got := map[string]string{}
	for _, rh := range h.Headers() {
		got[string(rh.Key)] = string(rh.Value)
	}
	assert.Equal(t, map[string]string{
		"keep": "1", middleware.HeaderWatermillUUID: "uuid-1", middleware.HeaderOriginalTopic: "orders",
		middleware.HeaderOriginalPartition: "2", middleware.HeaderOriginalOffset: "42", middleware.HeaderRetryCount: "1",
	}, got)
	assert.Equal(t, 6, h.Len(), "the skipped header is not copied")

	var bare middleware.RecordHeaders
	bare.SetOrigin("", "orders", false, 0, 0)
	require.Equal(t, 1, bare.Len(), "no UUID, no offset: only the topic")
	assert.Equal(t, middleware.HeaderOriginalTopic, string(bare.Headers()[0].Key))

	// Headers written after the buffer outgrew its room keep their values,
	// and so do the ones written before.
	var grown middleware.RecordHeaders
	long := strings.Repeat("x", 3000)
	grown.Set("a", "1")
	grown.SetInt("b", -42)
	grown.Set("c", long)
	grown.SetTime("d", time.Date(2026, 11, 27, 9, 5, 3, 7_000_000, time.UTC))
	grown.Set("e", "")
	var pairs []string
	for _, rh := range grown.Headers() {
		pairs = append(pairs, string(rh.Key)+"="+string(rh.Value))
	}
	assert.Equal(t, []string{"a=1", "b=-42", "c=" + long, "d=2026-11-27T09:05:03.007Z", "e="}, pairs)
}
