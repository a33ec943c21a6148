// Command orders is the kafkaevents reference service. It consumes
// order.created and user.registered with retries, a DLQ, correlation IDs and
// tracing, publishes order.processed, accepts orders and users over HTTP and
// serves the /kafka monitoring endpoints.
//
// With KAFKA_BROKERS unset it starts an embedded broker in process; with it
// set it runs against that Kafka. Every KAFKA_* variable of the library
// applies; KAFKA_CLIENT_ID defaults to "orders", KAFKA_CONSUMER_GROUP to
// "orders-group" and PORT to 3000.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, logger, os.LookupEnv)
	stop()
	if err != nil {
		logger.Error("orders service failed", "err", err)
		os.Exit(1)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("KAFKA_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func run(ctx context.Context, logger *slog.Logger, lookup func(string) (string, bool)) error {
	svc, err := Start(ctx, Options{Lookup: lookup, Logger: logger})
	if err != nil {
		return err
	}
	logger.Info("orders service ready", "http", svc.URL, "console", svc.ConsoleURL(), "brokers", svc.Brokers)
	for _, line := range svc.TryItOut() {
		fmt.Fprintln(os.Stderr, line)
	}
	select {
	case <-ctx.Done():
	case err := <-svc.Done():
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = svc.Close()
			return err
		}
	}
	logger.Info("shutting down: finishing in-flight messages")
	shutdownStart := time.Now()
	if err := svc.Close(); err != nil {
		return err
	}
	logger.Info("stopped", "took", time.Since(shutdownStart).Round(time.Millisecond).String())
	return nil
}
