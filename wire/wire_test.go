package wire_test

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

	"github.com/torix/kafkaevents/wire"
)

func TestReasonsAndClassification(t *testing.T) {
	base := errors.New("base")
	tests := []struct {
		name      string
		err       error
		reason    wire.Reason
		hasReason bool
		retryable bool
	}{
		{"plain", base, "", false, true},
		{"permanent", wire.Permanent(base), wire.ReasonPermanent, true, false},
		{"wrapped permanent", fmt.Errorf("ctx: %w", wire.Permanent(base)), wire.ReasonPermanent, true, false},
		{"undecodable", wire.Undecodable(base), wire.ReasonUndecodable, true, false},
		{"panic", &wire.PanicError{Value: "x"}, "", false, true},
		{"nil", nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := wire.ReasonOf(tt.err)
			assert.Equal(t, tt.hasReason, ok)
			assert.Equal(t, tt.reason, r)
			assert.Equal(t, tt.retryable, wire.IsRetryable(tt.err))
		})
	}
	assert.ErrorIs(t, wire.Permanent(base), base, "the cause stays reachable")
	assert.NoError(t, wire.Permanent(nil))
	for _, r := range wire.Reasons {
		assert.True(t, r.Valid())
	}
	assert.False(t, wire.Reason("bogus").Valid())
}

func TestTruncateError(t *testing.T) {
	short := "short"
	assert.Equal(t, short, wire.TruncateError(short))
	long := strings.Repeat("é", wire.MaxErrorMessageLen) // 2 bytes each
	got := wire.TruncateError(long)
	assert.LessOrEqual(t, len(got), wire.MaxErrorMessageLen)
	assert.True(t, utf8.ValidString(got), "cut on a rune boundary")
	assert.True(t, strings.HasSuffix(got, "…"))
}

func TestDeliveryOf(t *testing.T) {
	msg := message.NewMessage("1", nil)
	msg.Metadata.Set(wire.HeaderReprocessCount, "2")
	d := wire.DeliveryOf(msg)
	assert.Equal(t, wire.SourceMain, d.Source)
	assert.Equal(t, 2, d.ReprocessCount)
	assert.False(t, d.HasOffset)
	assert.Equal(t, 0, wire.RetryCountOf(msg), "a first delivery")

	var got wire.Outcome
	want := wire.Delivery{HandlerID: "h", Topic: "t", RetryCount: 2, Source: wire.SourceRetry, Report: func(o wire.Outcome) { got = o }}
	msg.SetContext(wire.WithDelivery(context.Background(), want))
	d = wire.DeliveryOf(msg)
	assert.Equal(t, "h", d.HandlerID)
	assert.Equal(t, 2, d.RetryCount)
	assert.Equal(t, 2, wire.RetryCountOf(msg))
	assert.Equal(t, "retry", d.Source.String())
	wire.Report(msg, wire.Outcome{Kind: wire.OutcomeRetried})
	assert.Equal(t, wire.OutcomeRetried, got.Kind)

	assert.False(t, wire.HandoffDisabled(context.Background()))
	assert.True(t, wire.HandoffDisabled(wire.WithoutHandoff(context.Background())))
}

func TestRecordHeaders(t *testing.T) {
	h := wire.CopyHeaders(map[string]string{"keep": "1", wire.HeaderRetryCount: "7"}, 4,
		func(k string) bool { return k == wire.HeaderRetryCount })
	h.SetOrigin("uuid-1", "orders", true, 2, 42)
	h.Set(wire.HeaderRetryCount, "1")
	got := map[string]string{}
	for _, rh := range h.Headers() {
		got[string(rh.Key)] = string(rh.Value)
	}
	assert.Equal(t, map[string]string{
		"keep": "1", wire.HeaderWatermillUUID: "uuid-1", wire.HeaderOriginalTopic: "orders",
		wire.HeaderOriginalPartition: "2", wire.HeaderOriginalOffset: "42", wire.HeaderRetryCount: "1",
	}, got)
	assert.Equal(t, 6, h.Len(), "the skipped header is not copied")

	var bare wire.RecordHeaders
	bare.SetOrigin("", "orders", false, 0, 0)
	require.Equal(t, 1, bare.Len(), "no UUID, no offset: only the topic")
	assert.Equal(t, wire.HeaderOriginalTopic, string(bare.Headers()[0].Key))

	// Headers written after the buffer outgrew its room keep their values,
	// and so do the ones written before.
	var grown wire.RecordHeaders
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
