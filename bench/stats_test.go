package main

import "testing"

// TestMedianTextDoesNotRoundIntoAGoal: a ratio that misses its goal by less
// than the rounding is shown with as many more decimals as it takes, so that
// the summary never reads "0.85 (goal ≥ 0.85: missed)".
func TestMedianTextDoesNotRoundIntoAGoal(t *testing.T) {
	for _, tt := range []struct {
		vals []float64
		want string
	}{
		{[]float64{0.849}, "0.849"},
		{[]float64{0.851}, "0.85"},
		{[]float64{0.70, 0.8496, 0.90}, "0.8496"},
		{[]float64{0.8449}, "0.84"},
		{[]float64{0.70}, "0.70"},
	} {
		r := row{unit: "ratio", vals: tt.vals, met: atLeast(0.85)}
		if got := r.medianText(); got != tt.want {
			t.Errorf("median of %v: got %q, want %q", tt.vals, got, tt.want)
		}
	}
}
