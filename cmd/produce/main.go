// Command produce sends records to a Kafka topic from the command line: to
// the embedded broker of cmd/embedded-kafka or the reference service, or to
// any Kafka, without kcat.
//
// Usage:
//
//	produce [-brokers 127.0.0.1:9092] -topic T [-key K] [-header k=v]... [value]
//
// With a value argument it sends one record; without one it sends one record
// per line of standard input (empty lines are skipped). -brokers defaults to
// $KAFKA_BROKERS, then 127.0.0.1:9092. -header may be repeated. Each record
// sent prints "topic/partition@offset" on stdout; an error is printed on
// stderr and the exit code is 1 (2 for bad flags).
//
// Example, with the reference service running on the embedded broker:
//
//	go run ./cmd/produce -topic order.created -key o-1 '{"orderId":"o-1","amount":42}'
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/IBM/sarama"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// headers is a repeatable -header k=v flag.
type headers []sarama.RecordHeader

func (h *headers) String() string { return fmt.Sprint(len(*h), " headers") }

func (h *headers) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	*h = append(*h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	return nil
}

// run is main without the process: it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("KAFKA_BROKERS")
	if def == "" {
		def = "127.0.0.1:9092"
	}
	brokers := fs.String("brokers", def, "comma-separated broker addresses")
	topic := fs.String("topic", "", "topic to send to (required)")
	key := fs.String("key", "", "record key (none when empty)")
	var hdrs headers
	fs.Var(&hdrs, "header", "record header key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *topic == "" || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "produce: -topic is required, and at most one value argument (quote it)")
		fs.Usage()
		return 2
	}
	if err := send(strings.Split(*brokers, ","), *topic, *key, hdrs, fs.Args(), stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "produce:", err)
		return 1
	}
	return 0
}

// send sends values (or, when there is none, the lines of stdin) to topic.
func send(brokers []string, topic, key string, hdrs headers, values []string, stdin io.Reader, stdout io.Writer) error {
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", strings.Join(brokers, ","), err)
	}
	one := func(value string) error {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value), Headers: hdrs}
		if key != "" {
			m.Key = sarama.StringEncoder(key)
		}
		part, off, err := p.SendMessage(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s/%d@%d\n", topic, part, off)
		return err
	}
	if len(values) == 1 {
		err = one(values[0])
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for err == nil && sc.Scan() {
			if line := sc.Text(); line != "" {
				err = one(line)
			}
		}
		if err == nil {
			err = sc.Err()
		}
	}
	return errors.Join(err, p.Close())
}
