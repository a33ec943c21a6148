package offsets_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/offsets"
)

func TestMetadataRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		base, end int64
		unsettled []int64
	}{
		{"one blocked record, 5000 after it", 100, 5101, []int64{100}},
		{"holes and repeats", 7, 40, []int64{7, 7, 9, 20, 39}},
		{"entries outside the window are left out", 10, 20, []int64{3, 10, 25}},
		{"large offsets", 1 << 40, 1<<40 + 64, []int64{1 << 40, 1<<40 + 63}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := offsets.EncodeMetadata(tt.base, tt.end, tt.unsettled)
			w, ok := offsets.DecodeMetadata(s, tt.base)
			require.True(t, ok, s)
			for off := tt.base - 2; off < tt.end+2; off++ {
				want := off >= tt.base && off < tt.end && !slices.Contains(tt.unsettled, off)
				assert.Equal(t, want, w.Settled(off), "offset %d", off)
			}
		})
	}
	assert.Empty(t, offsets.EncodeMetadata(5, 5, nil), "an empty window has no metadata")
}

// TestMetadataSize: 512 records in flight spread over a window of 60,000
// offsets fit the default budget.
func TestMetadataSize(t *testing.T) {
	var held []int64
	for i := int64(0); i < 512; i++ {
		held = append(held, 1_000_000+i*117)
	}
	s := offsets.EncodeMetadata(held[0], 1_060_000, held)
	assert.Less(t, len(s), offsets.DefaultMetadataBudget, "%d bytes", len(s))
}

// TestMetadataOfOtherClientsIsIgnored: metadata another client wrote, or a
// corrupt string, decodes to nothing and never panics.
func TestMetadataOfOtherClientsIsIgnored(t *testing.T) {
	for _, s := range []string{
		"", "{\"app\":\"x\"}", "kv1", "kv1!!!", "kv2AAAA", "kv1" + "_____w",
		offsets.EncodeMetadata(0, 10, []int64{0})[:5],
	} {
		w, ok := offsets.DecodeMetadata(s, 0)
		assert.False(t, ok, "%q", s)
		assert.Nil(t, w)
		assert.False(t, w.Settled(3))
	}
	_, ok := offsets.DecodeMetadata(offsets.EncodeMetadata(0, 10, []int64{0}), -1)
	assert.False(t, ok, "no committed offset, no window")
}

func FuzzDecodeMetadata(f *testing.F) {
	f.Add(offsets.EncodeMetadata(3, 90, []int64{3, 50}), int64(3))
	f.Add("kv1AAA", int64(0))
	f.Fuzz(func(t *testing.T, s string, base int64) {
		w, ok := offsets.DecodeMetadata(s, base)
		if !ok {
			return
		}
		require.True(t, slices.IsSorted(w.Unsettled))
		again, ok := offsets.DecodeMetadata(offsets.EncodeMetadata(w.Base, w.End, w.Unsettled), base)
		require.True(t, ok)
		require.Equal(t, w, again)
		_ = w.Settled(base + rand.Int64N(100))
	})
}
