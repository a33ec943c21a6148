package kafkaevents_test

import (
	"log/slog"
	"os"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/torix/kafkaevents"
)

// A logger of NewSlogLogger has a warning level, which the retry and DLQ
// middlewares use for each retry scheduled and each record dead-lettered.
// Give it to the stack with WithLogger, and to the router.
func ExampleNewSlogLogger() {
	handler := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // a stable output for this example
			}
			return a
		},
	})
	logger := kafkaevents.NewSlogLogger(slog.New(handler)).With(watermill.LogFields{"service": "orders"})

	logger.(kafkaevents.WarnLogger).Warn("Retry scheduled", watermill.LogFields{"attempt": 1})
	logger.Info("Router closed", nil)
	// Output:
	// level=WARN msg="Retry scheduled" service=orders attempt=1
	// level=INFO msg="Router closed" service=orders
}
