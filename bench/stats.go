package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// row is one figure: a value per run (or a single value), a unit and an
// optional goal on the median.
type row struct {
	name   string
	unit   string
	vals   []float64
	goal   string                    // e.g. "≥ 0.90"; empty when there is none
	met    func(median float64) bool // nil when there is no goal
	ratio  string                    // the summary line label, e.g. "full stack/bare"
	detail string                    // extra text shown after the values
	worst  bool                      // the goal applies to every run (the max), not to the median
}

func (r row) min() float64    { return slices.Min(r.vals) }
func (r row) max() float64    { return slices.Max(r.vals) }
func (r row) median() float64 { return median(r.vals) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// verdict is "met", "missed" or "" without a goal.
func (r row) verdict() string {
	if r.met == nil || len(r.vals) == 0 {
		return ""
	}
	v := r.median()
	if r.worst {
		v = r.max()
	}
	if r.met(v) {
		return "met"
	}
	return "missed"
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }

// format prints v in unit with a sensible precision.
func format(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case unit == "ratio":
		return fmt.Sprintf("%.2f", v)
	case unit == "msg/s":
		return fmt.Sprintf("%.0f", v)
	case unit == "count" || unit == "allocs/op" || unit == "B/op":
		return fmt.Sprintf("%.0f", v)
	case unit == "ns/op":
		return fmt.Sprintf("%.0f", v)
	case unit == "ms" || unit == "s" || unit == "MB" || unit == "µs":
		switch {
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		case v >= 1 || v == 0:
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// values is "min / median / max unit", or the value alone for one run.
func (r row) values() string {
	if len(r.vals) == 0 {
		return "n/a"
	}
	if len(r.vals) == 1 {
		return r.medianText() + unitSuffix(r.unit)
	}
	return fmt.Sprintf("%s / %s / %s%s", format(r.min(), r.unit), r.medianText(), format(r.max(), r.unit), unitSuffix(r.unit))
}

// medianText is the median as format writes it, with as many more decimals
// as it takes when the rounded ratio would read as meeting a goal the median
// misses (0.849 against "≥ 0.85").
func (r row) medianText() string {
	m := r.median()
	text := format(m, r.unit)
	if r.met == nil || r.unit != "ratio" || r.met(m) {
		return text
	}
	for decimals := 3; decimals <= 6; decimals++ {
		if rounded, err := strconv.ParseFloat(text, 64); err != nil || !r.met(rounded) {
			break
		}
		text = strconv.FormatFloat(m, 'f', decimals, 64)
	}
	return text
}

func unitSuffix(unit string) string {
	if unit == "ratio" || unit == "" || unit == "count" {
		return ""
	}
	return " " + unit
}

// section is one numbered figure of the report.
type section struct {
	title string
	what  string // how it was measured, one paragraph
	rows  []row
	notes []string // observations made while measuring (load, counts)
}

func (s *section) add(r row) *row {
	s.rows = append(s.rows, r)
	return &s.rows[len(s.rows)-1]
}

// summaryLines are the "label = value" lines printed at the end, one per row
// that has a ratio label.
func summaryLines(secs []*section) []string {
	var out []string
	for _, s := range secs {
		for _, r := range s.rows {
			if r.ratio == "" || len(r.vals) == 0 {
				continue
			}
			line := fmt.Sprintf("%s = %s", r.ratio, r.medianText())
			if r.unit != "ratio" {
				line += unitSuffix(r.unit)
			}
			var extra []string
			if len(r.vals) > 1 {
				extra = append(extra, fmt.Sprintf("min %s, max %s", format(r.min(), r.unit), format(r.max(), r.unit)))
			}
			if r.goal != "" {
				extra = append(extra, "goal "+r.goal+": "+r.verdict())
			}
			if len(extra) > 0 {
				line += " (" + strings.Join(extra, "; ") + ")"
			}
			out = append(out, line)
		}
	}
	return out
}
