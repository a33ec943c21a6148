package delayedretry_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/delayedretry"
)

// TestMetricsLabelsAreBounded: once handlers are expected, their series
// exist at 0 and any other handler ID is counted as unknown, whose series do
// not exist until something is counted there; Reset keeps the expected
// series and removes the others.
func TestMetricsLabelsAreBounded(t *testing.T) {
	m := delayedretry.NewMetrics()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(m))
	assert.Equal(t, "anything", m.Label("anything"), "unbounded until Expect")

	m.Expect("A.handle")
	m.Expect("B.handle")
	perHandler := count(t, reg, "kafkaevents_handler_failures_total")
	assert.Equal(t, 2, perHandler, "A and B from the start; no unknown series until something unknown comes")
	assert.NotContains(t, m.Stats().Handlers, delayedretry.UnknownHandler)
	assert.Equal(t, "A.handle", m.Label("A.handle"))
	assert.Equal(t, delayedretry.UnknownHandler, m.Label("forged"))

	m.Reset()
	after := count(t, reg)
	assert.Equal(t, 9*2+1, after, "nine metrics for A and B, and the lateness histogram")
	assert.Contains(t, m.Stats().Handlers, "A.handle")
}

// count returns the number of series of reg, of the metrics named (all when
// none is).
func count(t *testing.T, reg *prometheus.Registry, names ...string) int {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		if len(names) == 0 || slices.Contains(names, mf.GetName()) {
			n += len(mf.GetMetric())
		}
	}
	return n
}
