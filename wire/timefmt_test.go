package wire

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimeMatchesFormat(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -11*3600)}
	times := []time.Time{
		time.Date(2026, 11, 27, 9, 5, 3, 7_000_000, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(0, r.Int64N(1<<62)))
	}
	for _, tm := range times {
		for _, z := range zones {
			tz := tm.In(z)
			want := tz.UTC().Format(TimeFormat)
			if got := string(AppendTime(nil, tz)); got != want {
				t.Fatalf("AppendTime(%v) = %q, want %q", tz, got, want)
			}
		}
	}
	if got := string(AppendTime([]byte("at "), times[0])); got != "at 2026-11-27T09:05:03.007Z" {
		t.Fatalf("AppendTime appends: got %q", got)
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Now()
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTime(buf[:0], tm)
	}
}
