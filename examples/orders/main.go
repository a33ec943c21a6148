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
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, logger, os.LookupEnv)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		os.Exit(1)
	}
}

// printError writes err with one problem per line (a configuration error
// lists every bad variable), which a structured log line would quote into
// one line.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "orders service failed:")
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("KAFKA_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// waitReady waits, at most 15s, until the consumer groups have their
// partitions (the readiness check passes), so that the banner comes last and
// the first order is handled at once.
func waitReady(ctx context.Context, svc *Service, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := svc.Stack.Readiness(ctx)
		if r.Ready() {
			return
		}
		select {
		case <-ctx.Done():
			logger.Warn("not ready yet; starting anyway", "checks", r.Errors)
			return
		case <-tick.C:
		}
	}
}

func run(ctx context.Context, logger *slog.Logger, lookup func(string) (string, bool)) error {
	svc, err := Start(ctx, Options{Lookup: lookup, Logger: logger})
	if err != nil {
		return err
	}
	waitReady(ctx, svc, logger)
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
