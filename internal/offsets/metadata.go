package offsets

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// metadataPrefix starts the commit metadata this package writes: "kv" and
// the format version, 1.
const metadataPrefix = "kv1"

// DefaultMetadataBudget is the default of [Config.MetadataBudget]: well
// within Kafka's default offset.metadata.max.bytes (4,096), past which a
// commit fails.
const DefaultMetadataBudget = 3000

// EncodeMetadata returns the commit metadata that says which offsets of the
// window [base, end) are still unsettled; every other offset of the window is
// settled. base is the lowest unsettled offset when it is written; the
// metadata stays true when it is committed with a higher offset, since a
// settled offset never becomes unsettled. unsettled must be sorted; entries
// outside the window and repeats are left out. An empty window encodes as "".
//
// The format is "kv1" followed by the unpadded URL-safe base64 of unsigned
// varints: base, the window length end-base, the number of unsettled
// offsets, then each unsettled offset as its distance from the previous one
// (the first from base). Holes in the offsets (compacted or transaction
// markers) cost nothing: they count as settled.
func EncodeMetadata(base, end int64, unsettled []int64) string {
	if end <= base {
		return ""
	}
	buf := make([]byte, 0, 3*binary.MaxVarintLen64+2*len(unsettled))
	buf = binary.AppendUvarint(buf, uint64(base))
	buf = binary.AppendUvarint(buf, uint64(end-base))
	// unsettled is sorted; a repeated offset counts once.
	n, last := 0, base-1
	for _, off := range unsettled {
		if off >= base && off < end && off != last {
			n++
		}
		last = off
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	prev, last := base, base-1
	for _, off := range unsettled {
		repeated := off == last
		last = off
		if off < base || off >= end || repeated {
			continue
		}
		buf = binary.AppendUvarint(buf, uint64(off-prev))
		prev = off
	}
	return metadataPrefix + base64.RawURLEncoding.EncodeToString(buf)
}

// Window is a decoded commit metadata: the offsets of [Base, End) that are
// not in Unsettled were settled when it was committed.
type Window struct {
	Base, End int64
	Unsettled []int64
}

// Settled reports whether off is known to be settled.
func (w *Window) Settled(off int64) bool {
	if w == nil || off < w.Base || off >= w.End {
		return false
	}
	lo, hi := 0, len(w.Unsettled)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case w.Unsettled[m] == off:
			return false
		case w.Unsettled[m] < off:
			lo = m + 1
		default:
			hi = m
		}
	}
	return true
}

// maxWindow bounds the window a decoded metadata may claim, so that a
// forged or corrupt string cannot make a partition skip without end.
const maxWindow = 1 << 40

// DecodeMetadata decodes s, committed with offset committed, as
// EncodeMetadata writes it. It returns nil, false for "" and for anything it
// cannot decode (metadata of another client, another version, a corrupt
// string, a window that starts after the committed offset).
func DecodeMetadata(s string, committed int64) (*Window, bool) {
	rest, ok := strings.CutPrefix(s, metadataPrefix)
	if !ok || committed < 0 {
		return nil, false
	}
	buf, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, false
	}
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(buf)
		if n <= 0 {
			return 0, false
		}
		buf = buf[n:]
		return v, true
	}
	b, ok0 := next()
	span, ok1 := next()
	count, ok2 := next()
	if !ok0 || !ok1 || !ok2 || b > uint64(committed) || span == 0 || span > maxWindow || count > span || count > uint64(len(buf)) {
		return nil, false
	}
	base := int64(b)
	w := &Window{Base: base, End: base + int64(span), Unsettled: make([]int64, 0, count)}
	prev := base
	for i := uint64(0); i < count; i++ {
		d, ok := next()
		if !ok || (i > 0 && d == 0) || d >= span {
			return nil, false
		}
		prev += int64(d)
		if prev >= w.End {
			return nil, false
		}
		w.Unsettled = append(w.Unsettled, prev)
	}
	if len(buf) != 0 {
		return nil, false
	}
	return w, true
}
