package kafkaevents

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/offsets"
)

// TestStuckRecordShowsInReadiness: a record in its handler for longer than
// StuckAfter is named in the readiness warnings, and in the metrics.
func TestStuckRecordShowsInReadiness(t *testing.T) {
	stats := newFlowStats(nil)
	d := &drainingSubscriber{marks: offsets.NewTracker(offsets.Config{})}
	d.setFlow("orders", flowSettings{n: 8, handlerID: "Orders.stuck", stats: stats})
	s := &Stack{subscriber: d}
	assert.Empty(t, s.stuckRecords(), "nothing runs")

	r := &record{pf: &partFlow{tp: offsets.Partition{Topic: "orders", Partition: 2}}, hold: &offsets.InFlight{}}
	r.started = time.Now().Add(-StuckAfter / 2)
	stats.running[r] = struct{}{}
	assert.Empty(t, s.stuckRecords(), "not stuck yet")

	r.started = time.Now().Add(-StuckAfter - time.Second)
	w := s.stuckRecords()
	require.Len(t, w, 1)
	assert.True(t, strings.Contains(w["handler Orders.stuck"], "orders/2"), w)
	st := s.ConcurrencyStats()
	require.Len(t, st.Handlers, 1)
	assert.GreaterOrEqual(t, st.Handlers[0].OldestInFlightMs, StuckAfter.Milliseconds())
}
