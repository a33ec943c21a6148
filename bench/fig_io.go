package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
)

// ioWork is the handler time of figure 8: a database write or an HTTP call.
const ioWork = 2 * time.Millisecond

// ioKeys is the number of keys of figure 8.
const ioKeys = 300

// orderWatch counts per-key order violations: a key's record handled while
// an earlier one of the key runs, or before it.
type orderWatch struct {
	mu         sync.Mutex
	last       map[string]int
	running    map[string]bool
	violations atomic.Int64
}

func newOrderWatch() *orderWatch {
	return &orderWatch{last: map[string]int{}, running: map[string]bool{}}
}

// enter checks msg (value "key:seq") and returns the func to call when its
// handler returns.
func (w *orderWatch) enter(msg *message.Message) func() {
	k, s, _ := strings.Cut(string(msg.Payload), ":")
	seq, _ := strconv.Atoi(s)
	w.mu.Lock()
	if last, ok := w.last[k]; (ok && seq <= last) || w.running[k] {
		w.violations.Add(1)
	}
	w.last[k] = seq
	w.running[k] = true
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.running[k] = false
		w.mu.Unlock()
	}
}

// figIO measures figure 8: a handler that spends 2 ms per record, keyed
// records on 3 partitions; a bare Watermill router, the stack, and the
// stack with WithConcurrency(64), side by side.
func figIO(e *env, o options, rep *report) error {
	n := 6000
	if o.short {
		n = 1500
	}
	topic := e.name("io")
	if err := e.createTopics(topic); err != nil {
		return err
	}
	seq := map[string]int{}
	gen := func(i int) record {
		k := "customer-" + strconv.Itoa(i%ioKeys)
		r := record{key: k, value: []byte(k + ":" + strconv.Itoa(seq[k]))}
		seq[k]++
		return r
	}
	if err := e.produceWith(topic, n, gen, sarama.NewHashPartitioner); err != nil {
		return err
	}
	fmt.Printf("\n[8] I/O-bound handler: %d records, %d keys, %s per record\n", n, ioKeys, ioWork)
	type variant struct {
		name string
		fn   func(w *orderWatch) (consumeResult, error)
	}
	work := func(w *orderWatch) func(*message.Message) error {
		return func(msg *message.Message) error {
			defer w.enter(msg)()
			time.Sleep(ioWork)
			return nil
		}
	}
	variants := []variant{
		{"bare", func(w *orderWatch) (consumeResult, error) { return e.bareConsume(topic, n, work(w)) }},
		{"stack", func(w *orderWatch) (consumeResult, error) { return e.stackConsume(topic, n, tracingNoop, work(w)) }},
		{"stack-c64", func(w *orderWatch) (consumeResult, error) {
			return e.stackConsume(topic, n, tracingNoop, work(w), kafkaevents.WithConcurrency(64))
		}},
	}
	rates := map[string][]float64{}
	var ratioConc, ratioStack []float64
	var violations int64
	for run := range o.runs {
		got := map[string]float64{}
		for k := range variants {
			v := variants[(run+k)%len(variants)]
			w := newOrderWatch()
			res, err := v.fn(w)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rate := res.steadyRate(n)
			got[v.name] = rate
			rates[v.name] = append(rates[v.name], rate)
			violations += w.violations.Load()
			fmt.Printf("  run %d %-9s %8.0f msg/s  (%s total, first after %s, %d order violations)  load %s\n",
				run+1, v.name, rate, res.total.Round(time.Millisecond), res.firstAfter.Round(time.Millisecond),
				w.violations.Load(), loadAverage())
		}
		ratioConc = append(ratioConc, got["stack-c64"]/got["bare"])
		ratioStack = append(ratioStack, got["stack"]/got["bare"])
	}
	s := rep.section("8. I/O-bound handler",
		fmt.Sprintf("%d pre-produced records on a %d-partition topic, %d keys (hash-partitioned), each handler sleeping %s per record "+
			"(a database write or an HTTP call). Rates are steady: from the first record handled to the last. "+
			"watermill-kafka hands out one record per partition at a time, so the bare router and the stack without concurrency are "+
			"capped near partitions / handler time. With WithConcurrency(64), up to 64 records of a partition run at once, records "+
			"with the same key one at a time in offset order. The harness counts per-key order violations: a key's record handled "+
			"while an earlier one of the key runs, or after a later one.",
			n, e.partitions, ioKeys, ioWork))
	s.add(row{name: "bare Watermill router", unit: "msg/s", vals: rates["bare"]})
	s.add(row{name: "stack", unit: "msg/s", vals: rates["stack"]})
	s.add(row{name: "stack, WithConcurrency(64)", unit: "msg/s", vals: rates["stack-c64"]})
	s.add(row{name: "stack / bare", unit: "ratio", vals: ratioStack, ratio: "stack/bare (I/O-bound)"})
	s.add(row{name: "stack with WithConcurrency(64) / bare", unit: "ratio", vals: ratioConc, goal: "≥ 20", met: atLeast(20),
		ratio: "concurrent/bare (I/O-bound)"})
	s.add(row{name: "per-key order violations (all runs)", unit: "count", vals: []float64{float64(violations)}, goal: "0",
		met: func(v float64) bool { return v == 0 }})
	return nil
}
