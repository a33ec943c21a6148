package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/wire"
)

// TestExistingRouterGetsTheStack runs the example on the embedded broker (or
// on the Kafka named by KAFKA_BROKERS, with a client ID of its own) until its
// sample events are handled, then stops it.
func TestExistingRouterGetsTheStack(t *testing.T) {
	env := map[string]string{
		"KAFKA_RETRY_BASE_DELAY": "100ms",
		"KAFKA_RETRY_MAX_DELAY":  "400ms",
	}
	if brokers := os.Getenv("KAFKA_BROKERS"); brokers != "" {
		id := "billing-" + time.Now().UTC().Format("150405.000000")
		env["KAFKA_BROKERS"] = brokers
		env["KAFKA_CLIENT_ID"] = id
		env["KAFKA_FROM_BEGINNING"] = "true"
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	apps := make(chan *App, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, lookup, logger, func(a *App) { apps <- a }) }()
	var app *App
	select {
	case app = <-apps:
	case err := <-done:
		t.Fatalf("run returned before it started: %v", err)
	}

	flaky, ok := "inv-"+app.RunID+"-flaky", "inv-"+app.RunID+"-ok"
	shipped, rejected := "shp-"+app.RunID+"-ok", "shp-"+app.RunID+"-noaddr"

	// The pre-existing handler got its invoices, and the flaky one came back
	// through a retry topic as retry 1.
	require.Eventually(t, func() bool {
		return len(app.Ledger.Deliveries.Of(ok)) == 1 && len(app.Ledger.Deliveries.Of(flaky)) == 2
	}, time.Minute, 20*time.Millisecond, "ledger deliveries: ok %v, flaky %v",
		app.Ledger.Deliveries.Of(ok), app.Ledger.Deliveries.Of(flaky))
	assert.Equal(t, []int{0, 1}, app.Ledger.Deliveries.Of(flaky))
	assert.GreaterOrEqual(t, app.Stack.RetryStats().Handlers[HandlerLedger].Scheduled, int64(1))

	// The handler added with AddHandler got its shipments; the one without an
	// address was not retried and is in the DLQ as permanent.
	require.Eventually(t, func() bool {
		page, err := app.Stack.BrowseDLQ(ctx, TopicShipmentRequested, 100, 0)
		if err != nil {
			return false
		}
		for _, r := range page.Records {
			if r.Key == rejected {
				return r.Reason == string(wire.ReasonPermanent) && r.HandlerID == HandlerShipping
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond)
	assert.Len(t, app.Shipping.Deliveries.Of(shipped), 1)
	assert.Len(t, app.Shipping.Deliveries.Of(rejected), 1, "a permanent failure is not retried")

	// Both handlers are known to the stack, the direct one included.
	ids := []string{}
	for _, h := range app.Stack.Handlers() {
		ids = append(ids, h.ID)
	}
	assert.Equal(t, []string{HandlerLedger, HandlerShipping}, ids)

	// Nothing is in flight: run stops at once, not after the shutdown
	// timeout (30 s).
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("run did not return after its context was cancelled")
	}
	assert.Less(t, time.Since(began), 2*time.Second, "run returns within 2 s of the cancel")
}
