// Command embedded-kafka runs the library's embedded Kafka broker
// (kafkatest.Start, franz-go's kfake) as a process of its own, so that a
// service can be killed and restarted against a broker that outlives it, and
// the broker itself can be stopped and started again.
//
// It prints the broker address ("127.0.0.1:9092") as the first line on
// stdout once the broker listens, logs to stderr, and runs until SIGTERM or
// SIGINT, on which it closes the broker and exits 0.
//
// Usage:
//
//	embedded-kafka [-port 9092] [-partitions 3] [-topics a,b]
//	               [-data-dir DIR] [-min-session-timeout 6s]
//	               [-sasl-mechanism SCRAM-SHA-512 -sasl-user USER]
//	               [-log-level none|error|warn|info|debug]
//
// The SASL password is read from EMBEDDED_KAFKA_SASL_PASSWORD, never from a
// flag, so that it does not show in the process list. With -data-dir the
// broker keeps its data on disk and reloads it on the next start with the
// same directory; without it the data lives in memory and goes with the
// process. -port 0 picks a free port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/torix/kafkaevents/kafkatest"
)

// envPassword holds the SASL password.
const envPassword = "EMBEDDED_KAFKA_SASL_PASSWORD"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded-kafka:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("embedded-kafka", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 9092, "listening port on 127.0.0.1 (0 picks a free one)")
	partitions := fs.Int("partitions", 3, "partitions of seeded and auto-created topics")
	topics := fs.String("topics", "", "comma-separated topics to create at start")
	dataDir := fs.String("data-dir", "", "keep the data in this directory and reload it on start (default: in memory)")
	minSession := fs.Duration("min-session-timeout", 0, "smallest consumer group session timeout the broker accepts (default 6s, as Kafka)")
	mechanism := fs.String("sasl-mechanism", "", "require SASL with this mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from "+envPassword+")")
	user := fs.String("sasl-user", "", "the SASL user")
	logLevel := fs.String("log-level", "none", "broker log level on stderr: none, error, warn, info or debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("-port %d: want 0..65535", *port)
	}
	if *partitions < 1 || *partitions > 1000 {
		return fmt.Errorf("-partitions %d: want 1..1000", *partitions)
	}

	opts := []kafkatest.Option{kafkatest.Partitions(int32(*partitions))}
	if *port != 0 {
		opts = append(opts, kafkatest.Port(*port))
	}
	if names := splitList(*topics); len(names) > 0 {
		opts = append(opts, kafkatest.Topics(names...))
	}
	if *dataDir != "" {
		opts = append(opts, kafkatest.With(kfake.DataDir(*dataDir)))
	}
	if *minSession > 0 {
		opts = append(opts, kafkatest.With(kfake.GroupMinSessionTimeout(*minSession)))
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	if level != kfake.LogLevelNone {
		opts = append(opts, kafkatest.With(kfake.WithLogger(kfake.BasicLogger(stderr, level))))
	}
	if *mechanism != "" {
		password := getenv(envPassword)
		if *user == "" || password == "" {
			return errors.New("-sasl-mechanism needs -sasl-user and " + envPassword)
		}
		opts = append(opts, kafkatest.SASL(strings.ToUpper(*mechanism), *user, password))
	}

	started := time.Now()
	b, err := kafkatest.Start(opts...)
	if err != nil {
		return err
	}
	addr := strings.Join(b.Addrs(), ",")
	fmt.Fprintln(stdout, addr)
	fmt.Fprintf(stderr, "embedded-kafka: listening on %s (started in %s); SIGTERM stops it\n", addr, time.Since(started).Round(time.Millisecond))
	<-ctx.Done()
	stopping := time.Now()
	b.Close()
	fmt.Fprintf(stderr, "embedded-kafka: stopped in %s\n", time.Since(stopping).Round(time.Millisecond))
	return nil
}

func parseLogLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return kfake.LogLevelNone, fmt.Errorf("-log-level %q: want none, error, warn, info or debug", s)
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
