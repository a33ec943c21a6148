package consume

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/offsets"
)

// TestStuckRecordIsReported: a record in its handler for longer than the
// stuck threshold is named by Stuck (the readiness warnings), and is the
// oldest the handler's Stats report (the metrics).
func TestStuckRecordIsReported(t *testing.T) {
	const stuckAfter = 30 * time.Second
	stats := NewStats(nil)
	d := NewSubscriber(nil, offsets.NewTracker(offsets.Config{}), Config{})
	d.SetHandler("orders", Settings{Concurrency: 8, HandlerID: "Orders.stuck", Stats: stats})
	assert.Empty(t, d.Stuck(stuckAfter), "nothing runs")
	_, ok := stats.Oldest()
	assert.False(t, ok, "nothing runs")

	r := &record{claim: &claim{tp: offsets.Partition{Topic: "orders", Partition: 2}}, hold: &offsets.InFlight{}}
	r.started = time.Now().Add(-stuckAfter / 2)
	stats.running[r] = struct{}{}
	assert.Empty(t, d.Stuck(stuckAfter), "not stuck yet")

	r.started = time.Now().Add(-stuckAfter - time.Second)
	w := d.Stuck(stuckAfter)
	require.Len(t, w, 1)
	assert.True(t, strings.Contains(w["handler Orders.stuck"], "orders/2"), w)
	oldest, ok := stats.Oldest()
	require.True(t, ok)
	assert.GreaterOrEqual(t, time.Since(oldest.Started), stuckAfter)
	assert.Equal(t, offsets.Partition{Topic: "orders", Partition: 2}, oldest.Partition)
	require.Len(t, d.Handlers(), 1)
}
