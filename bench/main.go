// Command bench measures kafkaevents side by side with what it is built on:
// consume overhead against a bare Watermill router, the failure path, retry
// precision, the producer against Watermill's publisher and a raw sarama
// AsyncProducer, DLQ reprocessing against a bare sarama scan, the
// middlewares' micro-benchmarks and the memory held by waiting retries.
//
// It runs against the embedded broker (kafkatest, in process) unless
// KAFKA_BROKERS is set, and writes BENCHMARKS.md. Usage:
//
//	go run ./bench                 # every figure, 3 runs each (9 for 1 and 2), writes BENCHMARKS.md
//	BENCH_SHORT=1 go run ./bench   # 1 run, smaller counts, prints only
//	go run ./bench -only 1,4 -out figures.md   # two figures, written elsewhere
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// options are the command line flags.
type options struct {
	short bool
	runs  int
	// consumeRuns are the runs of figures 1 and 2, whose ratios vary most
	// from run to run: 9 by default, else runs.
	consumeRuns int
	out         string
	only        map[int]bool
	size        int
	profile     string
	child       string
	brokers     string
	variants    map[string]bool
	topic       string
	n           int
	command     string
}

// counts are the message counts of the figures.
type counts struct {
	consume   int // figures 1 and 2
	retries   int // figure 3
	batch     int // figure 4: SendBatch and the AsyncProducer
	publish   int // figure 4: Watermill's publisher, one by one
	dlqPer    int // figure 5: records per topic (10 topics)
	waiting   int // figure 7
	benchtime string
}

func (o options) counts() counts {
	if o.short {
		return counts{consume: 10_000, retries: 300, batch: 10_000, publish: 2_000, dlqPer: 2_000, waiting: 10_000, benchtime: "20000x"}
	}
	return counts{consume: 100_000, retries: 1_000, batch: 100_000, publish: 10_000, dlqPer: 10_000, waiting: 100_000, benchtime: "1s"}
}

func parseFlags() (options, error) {
	var o options
	var only string
	short := os.Getenv("BENCH_SHORT")
	flag.BoolVar(&o.short, "short", short != "" && short != "0", "one run with smaller counts (also BENCH_SHORT=1); prints the figures and writes -out only when it is given")
	flag.IntVar(&o.runs, "runs", 0, "runs per figure (default 3, and 9 for figures 1 and 2; 1 in short mode)")
	flag.StringVar(&o.out, "out", "", "write the report to this file (default BENCHMARKS.md, none in short mode)")
	flag.StringVar(&only, "only", "", "comma-separated figure numbers to run (default all)")
	flag.IntVar(&o.size, "size", 1024, "message size in bytes")
	flag.StringVar(&o.profile, "profile", "", "write CPU and heap profiles of each figure into this directory")
	flag.StringVar(&o.child, "child", "", "internal: run a figure in a child process")
	flag.StringVar(&o.brokers, "brokers", "", "internal: brokers of the parent's broker (child processes)")
	flag.StringVar(&o.topic, "topic", "", "internal: topic of a child process")
	flag.IntVar(&o.n, "n", 0, "internal: message count of a child process")
	var variants string
	flag.StringVar(&variants, "variants", "", "figures 1 and 2: run only these consumers (bare,full,sdk,fail), for profiling")
	flag.Parse()
	o.consumeRuns = o.runs
	if o.runs == 0 {
		o.runs, o.consumeRuns = 3, 9
		if o.short {
			o.runs, o.consumeRuns = 1, 1
		}
	}
	if o.runs < 1 {
		return o, errors.New("-runs must be at least 1")
	}
	if o.out == "" && !o.short {
		o.out = "BENCHMARKS.md"
	}
	if only != "" {
		o.only = map[int]bool{}
		for _, f := range strings.Split(only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 9 {
				return o, fmt.Errorf("-only %q: want figure numbers 1 to 9", only)
			}
			o.only[n] = true
		}
	}
	if variants != "" {
		o.variants = map[string]bool{}
		for _, v := range strings.Split(variants, ",") {
			o.variants[strings.TrimSpace(v)] = true
		}
	}
	o.command = commandLine()
	return o, nil
}

// commandLine is the command as a reader would type it again.
func commandLine() string {
	var parts []string
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		parts = append(parts, "KAFKA_BROKERS="+v)
	}
	if v := os.Getenv("BENCH_SHORT"); v != "" {
		parts = append(parts, "BENCH_SHORT="+v)
	}
	parts = append(parts, "go run ./bench")
	parts = append(parts, os.Args[1:]...)
	return strings.Join(parts, " ")
}

func (o options) wants(fig int) bool { return o.only == nil || o.only[fig] }

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if o.child != "" {
		if err := runChild(o); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	started := time.Now()
	e, err := newEnv(3)
	if err != nil {
		return err
	}
	defer e.close()
	rep := newReport(o, e)
	fmt.Printf("kafkaevents benchmarks: %s, %d run(s), %d-byte messages, load %s\n", e.kind(), o.runs, o.size, loadAverage())

	figures := []struct {
		n  int
		fn func(*env, options, *report) error
	}{
		{1, figConsume}, // also figure 2, measured in the same runs
		{3, figRetryPrecision},
		{4, figProducer},
		{5, figReprocess},
		{6, figMicro},
		{7, figMemory},
		{8, figIO},
		{9, figKeyOrder},
	}
	var errs []error
	for _, f := range figures {
		if !o.wants(f.n) && (f.n != 1 || !o.wants(2)) {
			continue
		}
		if err := f.fn(e, o, rep); err != nil {
			fmt.Fprintf(os.Stderr, "figure %d: %v\n", f.n, err)
			errs = append(errs, fmt.Errorf("figure %d: %w", f.n, err))
		}
	}
	rep.loadEnd = loadAverage()
	rep.elapsed = time.Since(started)

	fmt.Println()
	fmt.Println("Summary (median of the runs):")
	for _, l := range summaryLines(rep.sections) {
		fmt.Println("  " + l)
	}
	fmt.Printf("load average at the end: %s; took %s\n", rep.loadEnd, rep.elapsed.Round(time.Second))
	if o.out != "" {
		if err := rep.write(o.out); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Println("wrote", o.out)
		}
	}
	return errors.Join(errs...)
}
