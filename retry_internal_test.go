package kafkaevents

import (
	"testing"
	"time"
)

func TestRetryFetchWaitsAQuarterOfTheShortestDelay(t *testing.T) {
	for _, tc := range []struct {
		shortest, maxWait time.Duration
		minBytes          int32
		wantMin           int32
		wantWait          time.Duration
	}{
		{shortest: 100 * time.Millisecond, minBytes: 1, maxWait: 250 * time.Millisecond, wantMin: retryFetchMinBytes, wantWait: 25 * time.Millisecond},
		{shortest: 30 * time.Second, minBytes: 1, maxWait: 250 * time.Millisecond, wantMin: retryFetchMinBytes, wantWait: 250 * time.Millisecond},
		{shortest: 10 * time.Millisecond, minBytes: 1, maxWait: 250 * time.Millisecond, wantMin: retryFetchMinBytes, wantWait: 2 * time.Millisecond},
		{shortest: 3 * time.Millisecond, minBytes: 1, maxWait: 250 * time.Millisecond, wantMin: 1, wantWait: 250 * time.Millisecond},
		{shortest: 0, minBytes: 1, maxWait: 250 * time.Millisecond, wantMin: 1, wantWait: 250 * time.Millisecond},
		{shortest: time.Second, minBytes: 1 << 20, maxWait: 100 * time.Millisecond, wantMin: 1 << 20, wantWait: 100 * time.Millisecond},
	} {
		gotMin, gotWait := retryFetch(tc.shortest, tc.minBytes, tc.maxWait)
		if gotMin != tc.wantMin || gotWait != tc.wantWait {
			t.Errorf("retryFetch(%s, %d, %s) = %d, %s; want %d, %s", tc.shortest, tc.minBytes, tc.maxWait, gotMin, gotWait, tc.wantMin, tc.wantWait)
		}
	}
}
