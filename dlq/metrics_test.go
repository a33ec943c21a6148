package dlq_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

// TestMetricsTopicsAreBounded: the series of an expected topic exist from
// the start, one per reason, at 0; those of unknown only once a record of an
// unknown topic is counted.
func TestMetricsTopicsAreBounded(t *testing.T) {
	m := dlq.NewMetrics()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(m))
	m.ExpectTopic("orders")
	n := count(t, reg, "kafkaevents_dlq_messages_stored_total")
	assert.Equal(t, len(wire.Reasons), n)
	m.ExpectTopic("payments")
	assert.Equal(t, 2*len(wire.Reasons), count(t, reg, "kafkaevents_dlq_messages_stored_total"))
	stats := m.Stats()
	assert.Contains(t, stats.ByTopic, "orders")
	assert.NotContains(t, stats.ByTopic, dlq.UnknownTopic, "no unknown row until something unknown comes")
	m.Reset()
	n = count(t, reg, "kafkaevents_dlq_messages_stored_total")
	assert.Equal(t, 2*len(wire.Reasons), n, "a reset keeps the known series")
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
