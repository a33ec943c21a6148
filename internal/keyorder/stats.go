package keyorder

import (
	"cmp"
	"slices"
	"time"

	"github.com/torix/kafkaevents/internal/offsets"
)

// HandlerStats are the parked keys of one handler.
type HandlerStats struct {
	HandlerID string
	// ParkedKeys counts the keys with a head; SetAside the records set
	// aside behind them (or being delivered after their head was
	// released).
	ParkedKeys int
	SetAside   int
	// OldestParked is when the oldest head was parked; zero when none is.
	OldestParked time.Time
}

// Stats returns the parked keys of each handler that has some, by handler
// ID.
func (p *Parker) Stats() map[string]HandlerStats {
	if !p.Started() {
		return nil
	}
	p.mu.Lock()
	by := map[string]*HandlerStats{}
	for g, gr := range p.groups {
		s := by[g.HandlerID]
		if s == nil {
			s = &HandlerStats{HandlerID: g.HandlerID}
			by[g.HandlerID] = s
		}
		if gr.heads > 0 {
			s.ParkedKeys++
		}
		for _, e := range gr.entries {
			switch e.kind {
			case KindAside:
				s.SetAside++
			case KindHead:
				if s.OldestParked.IsZero() || e.since.Before(s.OldestParked) {
					s.OldestParked = e.since
				}
			}
		}
	}
	p.mu.Unlock()
	out := make(map[string]HandlerStats, len(by))
	for id, s := range by {
		out[id] = *s
	}
	return out
}

// ParkedKey is one parked key, as the console lists it.
type ParkedKey struct {
	Group
	// Head is the original offset of the record the key waits behind, Reason
	// why it was parked (retry, dead-lettered), Since when.
	Head   int64
	Reason string
	Since  time.Time
	// SetAside counts the records set aside behind it.
	SetAside int
}

// Parked lists the parked keys, oldest first, at most limit of them (all
// when limit is 0).
func (p *Parker) Parked(limit int) []ParkedKey {
	if !p.Started() {
		return nil
	}
	p.mu.Lock()
	var out []ParkedKey
	for g, gr := range p.groups {
		k := ParkedKey{Group: g, Head: -1}
		for off, e := range gr.entries {
			switch e.kind {
			case KindAside:
				k.SetAside++
			case KindHead:
				if k.Head < 0 || off < k.Head {
					k.Head, k.Reason, k.Since = off, e.reason, e.since
				}
			}
		}
		if k.Head >= 0 {
			out = append(out, k)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b ParkedKey) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Key, b.Key))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Full returns the partitions that wait for room (Config.Limit), with since
// when.
func (p *Parker) Full() map[offsets.Partition]time.Time {
	if !p.Started() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[offsets.Partition]time.Time, len(p.full))
	for tp, t := range p.full {
		out[tp] = t
	}
	return out
}
