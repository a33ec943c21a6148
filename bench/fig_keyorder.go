package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// keyOrderRetryDelay is the retry delay of figure 9.
const keyOrderRetryDelay = 10 * time.Millisecond

// firstSuccess counts the records of figure 9 on their first successful
// handling, and the per-key order violations among them: a key's record
// first handled successfully after a later one of the key. Each record of
// failing fails once, on its first delivery.
type firstSuccess struct {
	mu         sync.Mutex
	failing    func(i int) bool
	failed     map[string]bool
	handled    map[string]bool
	last       map[string]int
	violations int
	// released counts the records handled after being set aside behind
	// their parked key.
	released int
	c        *counter
}

func newFirstSuccess(n int, failing func(int) bool) *firstSuccess {
	return &firstSuccess{failing: failing, failed: map[string]bool{}, handled: map[string]bool{}, last: map[string]int{}, c: newCounter(n)}
}

// handle is the handler: 2 ms of I/O, then a failure the first time for a
// failing record.
func (f *firstSuccess) handle(msg *message.Message) error {
	time.Sleep(ioWork)
	v := string(msg.Payload)
	k, rest, _ := strings.Cut(v, ":")
	seqText, idxText, _ := strings.Cut(rest, ":")
	seq, _ := strconv.Atoi(seqText)
	idx, _ := strconv.Atoi(idxText)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing(idx) && !f.failed[v] {
		f.failed[v] = true
		return errors.New("fails once")
	}
	if f.handled[v] {
		return nil
	}
	f.handled[v] = true
	if wire.DeliveryOf(msg).Source == wire.SourceParked {
		f.released++
	}
	if last, ok := f.last[k]; ok && seq < last {
		f.violations++
	}
	f.last[k] = max(seq, f.last[k])
	f.c.add()
	return nil
}

// figKeyOrder measures figure 9: the handler of figure 8 (2 ms, 300 keys, 3
// partitions) with 5% of the records failing once; a bare router, the stack
// with WithConcurrency(64), and the same with KeepKeyOrder; then the two
// stacks with no failure.
func figKeyOrder(e *env, o options, rep *report) error {
	n, nBare := 30000, 3000
	if o.short {
		n, nBare = 6000, 1000
	}
	topic := e.name("keyorder")
	if err := e.createTopics(topic); err != nil {
		return err
	}
	seq := map[string]int{}
	gen := func(i int) record {
		k := "customer-" + strconv.Itoa(i%ioKeys)
		r := record{key: k, value: []byte(k + ":" + strconv.Itoa(seq[k]) + ":" + strconv.Itoa(i))}
		seq[k]++
		return r
	}
	if err := e.produceWith(topic, n, gen, sarama.NewHashPartitioner); err != nil {
		return err
	}
	// One record in 20, spread over the keys: a key's records fail
	// independently of each other.
	fivePercent := func(i int) bool { return rand.New(rand.NewPCG(uint64(i), 20)).IntN(20) == 0 }
	never := func(int) bool { return false }
	fmt.Printf("\n[9] Key order across retries: %d records, %d keys, %s per record, 5%% failing once (retry after %s)\n", n, ioKeys, ioWork, keyOrderRetryDelay)
	type variant struct {
		name    string
		failing func(int) bool
		keep    bool
		bare    bool
	}
	variants := []variant{
		{name: "bare", failing: fivePercent, bare: true},
		{name: "c64", failing: fivePercent},
		{name: "c64-keep", failing: fivePercent, keep: true},
		{name: "c64-ok", failing: never},
		{name: "c64-keep-ok", failing: never, keep: true},
	}
	rates := map[string][]float64{}
	violations := map[string]int{}
	var setAside []float64
	var keepBare, keepC64, keepOK []float64
	for run := range o.runs {
		got := map[string]float64{}
		for k := range variants {
			v := variants[(run+k)%len(variants)]
			count := n
			if v.bare {
				count = nBare // its rate does not depend on the count: it is far slower
			}
			f := newFirstSuccess(count, v.failing)
			var res consumeResult
			var err error
			if v.bare {
				res, err = e.bareFirstSuccess(topic, f)
			} else {
				res, err = e.keyOrderConsume(topic, f, v.keep)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rate := res.steadyRate(count)
			got[v.name] = rate
			rates[v.name] = append(rates[v.name], rate)
			f.mu.Lock()
			violations[v.name] += f.violations
			vs := f.violations
			if v.name == "c64-keep" {
				setAside = append(setAside, float64(f.released)/float64(count))
			}
			f.mu.Unlock()
			fmt.Printf("  run %d %-12s %8.0f msg/s  (%s total, %d order violations)  load %s\n",
				run+1, v.name, rate, res.total.Round(time.Millisecond), vs, loadAverage())
		}
		keepBare = append(keepBare, got["c64-keep"]/got["bare"])
		keepC64 = append(keepC64, got["c64-keep"]/got["c64"])
		keepOK = append(keepOK, got["c64-keep-ok"]/got["c64-ok"])
	}
	s := rep.section("9. Key order across retries",
		fmt.Sprintf("The handler of figure 8 (%d pre-produced records on a %d-partition topic, %d keys, %s per record), with 5%% of the "+
			"records failing on their first delivery and succeeding on the next (retry delay %s). Rates are steady, until every record "+
			"was first handled successfully. The bare router nacks a failure, and watermill-kafka resends it after 100 ms while its "+
			"partition waits. The stack with WithConcurrency(64) retries through a delay lane while the partition flows; with "+
			"KeepKeyOrder the key of a failed record waits for it (the records behind it set aside in {service}.parked). A violation "+
			"is a key's record first handled successfully after a later one of the key. The last rows run the two stacks with no failure.",
			n, e.partitions, ioKeys, ioWork, keyOrderRetryDelay))
	s.add(row{name: "bare Watermill router", unit: "msg/s", vals: rates["bare"]})
	s.add(row{name: "stack, WithConcurrency(64)", unit: "msg/s", vals: rates["c64"]})
	s.add(row{name: "stack, WithConcurrency(64), KeepKeyOrder", unit: "msg/s", vals: rates["c64-keep"]})
	s.add(row{name: "KeepKeyOrder / bare", unit: "ratio", vals: keepBare, goal: "≥ 15", met: atLeast(15), ratio: "KeepKeyOrder/bare (5% failing)"})
	s.add(row{name: "KeepKeyOrder / without it", unit: "ratio", vals: keepC64, goal: "≥ 0.90", met: atLeast(0.90), ratio: "KeepKeyOrder/without (5% failing)"})
	s.add(row{name: "share of the records set aside, KeepKeyOrder", unit: "ratio", vals: setAside})
	for _, name := range []string{"bare", "c64", "c64-keep"} {
		vs := float64(violations[name])
		r := row{name: "order violations, " + map[string]string{"bare": "bare", "c64": "without KeepKeyOrder", "c64-keep": "KeepKeyOrder"}[name] + " (all runs)", unit: "count", vals: []float64{vs}}
		if name == "c64-keep" {
			r.goal, r.met = "0", func(v float64) bool { return v == 0 }
		}
		s.add(r)
	}
	s.add(row{name: "stack, WithConcurrency(64), no failure", unit: "msg/s", vals: rates["c64-ok"]})
	s.add(row{name: "same with KeepKeyOrder", unit: "msg/s", vals: rates["c64-keep-ok"]})
	s.add(row{name: "KeepKeyOrder / without it, no failure", unit: "ratio", vals: keepOK, goal: "≥ 0.97", met: atLeast(0.97), ratio: "KeepKeyOrder/without (no failure)"})
	return nil
}

// keyOrderConsume runs the stack with WithConcurrency(64) and a retry delay
// of keyOrderRetryDelay, KeepKeyOrder when keep, until f counted every
// record.
func (e *env) keyOrderConsume(topic string, f *firstSuccess, keep bool) (consumeResult, error) {
	cfg := e.stackConfig("keyorder")
	cfg.Retry.Attempts, cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 3, keyOrderRetryDelay, keyOrderRetryDelay
	cfg.Retry.KeepKeyOrder = keep
	sr, err := e.newStackRun(cfg, tracingNoop, func(s *kafkaevents.Stack, r *message.Router) error {
		_, err := s.AddHandler(r, topic, "Bench.keyOrder", f.handle, kafkaevents.WithConcurrency(64))
		return err
	})
	if err != nil {
		return consumeResult{}, err
	}
	defer sr.close()
	return timeRouter(sr.router, f.c)
}

// bareFirstSuccess runs a bare Watermill router with f's handler.
func (e *env) bareFirstSuccess(topic string, f *firstSuccess) (consumeResult, error) {
	return e.bareRun(topic, f.c, f.handle)
}
