package correlation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/correlation"
)

func TestNewFormatAndUniqueness(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := correlation.New()
		assert.Regexp(t, `^corr-[0-9a-z]{10}-\d{13}$`, id)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
}

func TestResolvePrecedence(t *testing.T) {
	ctx := correlation.WithID(context.Background(), "from-ctx")
	md := message.Metadata{correlation.Header: "from-header"}
	assert.Equal(t, "explicit", correlation.Resolve(ctx, "explicit", md))
	assert.Equal(t, "from-header", correlation.Resolve(ctx, "", md))
	assert.Equal(t, "from-watermill", correlation.Resolve(ctx, "", message.Metadata{correlation.WatermillMetadataKey: "from-watermill"}))
	assert.Equal(t, "from-ctx", correlation.Resolve(ctx, "", nil))
	assert.True(t, strings.HasPrefix(correlation.Resolve(context.Background(), "", nil), "corr-"))
	huge := strings.Repeat("x", correlation.MaxLen+1)
	assert.Equal(t, "from-ctx", correlation.Resolve(ctx, "", message.Metadata{correlation.Header: huge}), "an oversized header is ignored")
}

func TestMiddleware(t *testing.T) {
	var seen string
	h := correlation.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		seen = correlation.FromContext(msg.Context())
		out := message.NewMessage("out", nil)
		preset := message.NewMessage("preset", nil)
		preset.Metadata.Set(correlation.Header, "kept")
		return []*message.Message{out, preset}, nil
	})

	in := message.NewMessage("1", nil)
	in.Metadata.Set(correlation.Header, "corr-in")
	out, err := h(in)
	require.NoError(t, err)
	assert.Equal(t, "corr-in", seen)
	assert.Equal(t, "corr-in", out[0].Metadata.Get(correlation.Header), "stamped on outputs")
	assert.Equal(t, "kept", out[1].Metadata.Get(correlation.Header), "an output's own ID is kept")

	bare := message.NewMessage("2", nil)
	_, err = h(bare)
	require.NoError(t, err)
	assert.Regexp(t, `^corr-`, seen, "generated when missing")
	assert.Empty(t, bare.Metadata.Get(correlation.Header), "the incoming message is not modified")
}

// TestFromRecord: an ID derived from a record is the same for the same
// record, different for another one, and keeps the shape of New's.
func TestFromRecord(t *testing.T) {
	ts := time.UnixMilli(1_765_000_000_123)
	id := correlation.FromRecord("orders", 2, 41, ts)
	assert.Regexp(t, `^corr-[0-9a-z]{10}-1765000000123$`, id)
	assert.Equal(t, id, correlation.FromRecord("orders", 2, 41, ts), "stable")
	assert.NotEqual(t, id, correlation.FromRecord("orders", 2, 42, ts))
	assert.NotEqual(t, id, correlation.FromRecord("orders", 1, 41, ts))
	assert.NotEqual(t, id, correlation.FromRecord("payments", 2, 41, ts))
	assert.Regexp(t, `^corr-[0-9a-z]{10}-0$`, correlation.FromRecord("orders", 2, 41, time.Time{}))
}
