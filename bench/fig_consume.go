package main

import (
	"fmt"
	"time"

	"github.com/torix/kafkaevents"
)

// failRetryDelay is the retry delay of figure 2.
const failRetryDelay = 100 * time.Millisecond

// figConsume measures figures 1 and 2 in the same runs: a bare router, the
// full stack with no-op tracing, the full stack with the OTel SDK, and the
// full stack with every tenth message failing once, each with a fresh
// consumer group on the same pre-produced messages. The order rotates from
// run to run so that a drift in load does not favour one of them.
func figConsume(e *env, o options, rep *report) error {
	n := o.counts().consume
	topic := e.name("consume")
	if err := e.createTopics(topic); err != nil {
		return err
	}
	t0 := time.Now()
	if err := e.produce(topic, n, func(i int) record { return event(i, o.size) }); err != nil {
		return err
	}
	fmt.Printf("\n[1,2] consume: %d messages of %d bytes pre-produced in %s\n", n, o.size, time.Since(t0).Round(time.Millisecond))
	stop, err := startProfile(o, "consume")
	if err != nil {
		return err
	}
	defer stop()

	type variant struct {
		name string
		fn   func() (consumeResult, error)
	}
	variants := []variant{
		{"bare", func() (consumeResult, error) { return e.bareConsume(topic, n, noWork) }},
		{"full", func() (consumeResult, error) { return e.stackConsume(topic, n, tracingNoop, noWork) }},
		{"sdk", func() (consumeResult, error) { return e.stackConsume(topic, n, tracingSDK, noWork) }},
		{"bare-json", func() (consumeResult, error) { return e.bareConsume(topic, n, decodeWork) }},
		{"full-json", func() (consumeResult, error) { return e.stackConsume(topic, n, tracingNoop, decodeWork) }},
		{"fail", func() (consumeResult, error) { return e.failingConsume(topic, n, failRetryDelay, true, true) }},
		{"nofail", func() (consumeResult, error) { return e.failingConsume(topic, n, failRetryDelay, false, true) }},
		{"off", func() (consumeResult, error) { return e.stackConsume(topic, n, tracingOff, noWork) }},
		{"full-c64", func() (consumeResult, error) {
			return e.stackConsume(topic, n, tracingNoop, noWork, kafkaevents.WithConcurrency(64))
		}},
		{"fail-alo", func() (consumeResult, error) { return e.failingConsume(topic, n, failRetryDelay, true, false) }},
	}
	if !o.wants(1) {
		variants = []variant{variants[1], variants[5], variants[6], variants[9]}
	} else if !o.wants(2) {
		variants = append(variants[:5], variants[7], variants[8])
	}
	if o.variants != nil {
		var keep []variant
		for _, v := range variants {
			if o.variants[v.name] {
				keep = append(keep, v)
			}
		}
		variants = keep
	}
	rates := map[string][]float64{}
	var steadyFull, steadyFail, inWindow []float64
	firsts := map[string][]float64{}
	cpus := map[string][]float64{}
	var ratioFull, ratioSDK, ratioJSON, ratioFail, ratioFailNoop, ratioOff, ratioNoopOff, ratioConc, ratioEOS []float64
	for run := range o.consumeRuns {
		got := map[string]float64{}
		for k := range variants {
			v := variants[(run+k)%len(variants)]
			res, err := v.fn()
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			got[v.name] = res.rate(n)
			got[v.name+"/steady"] = res.steadyRate(n)
			rates[v.name] = append(rates[v.name], res.rate(n))
			firsts[v.name] = append(firsts[v.name], float64(res.firstAfter.Milliseconds()))
			cpus[v.name] = append(cpus[v.name], float64(res.cpu.Microseconds())/float64(n))
			if v.name == "fail" {
				inWindow = append(inWindow, 100*float64(res.retried)/float64(failuresOf(n)))
			}
			fmt.Printf("  run %d %-9s %8.0f msg/s  (%s total, first message after %s, %.1f µs CPU/msg)  load %s\n",
				run+1, v.name, res.rate(n), res.total.Round(time.Millisecond), res.firstAfter.Round(time.Millisecond),
				float64(res.cpu.Microseconds())/float64(n), loadAverage())
		}
		ratio := func(dst *[]float64, a, b string) {
			if x, ok := got[a]; ok {
				if y, ok := got[b]; ok {
					*dst = append(*dst, x/y)
				}
			}
		}
		ratio(&ratioFull, "full", "bare")
		ratio(&ratioSDK, "sdk", "bare")
		ratio(&ratioJSON, "full-json", "bare-json")
		ratio(&ratioFail, "fail", "nofail")
		ratio(&ratioFailNoop, "fail", "full")
		ratio(&ratioOff, "off", "bare")
		ratio(&ratioNoopOff, "full", "off")
		ratio(&ratioConc, "full-c64", "full")
		ratio(&ratioEOS, "fail", "fail-alo")
		ratio(&steadyFull, "full/steady", "bare/steady")
		ratio(&steadyFail, "fail/steady", "nofail/steady")
	}

	if o.wants(1) {
		s := rep.section("1. Consume overhead",
			fmt.Sprintf("%d pre-produced messages (%d bytes, a key and an x-correlation-id header each) on a %d-partition topic; "+
				"each consumer gets a fresh consumer group reading from the oldest offset, and is timed from router.Run until its "+
				"handler saw all %d. Bare: a Watermill router, the watermill-kafka subscriber (same sarama settings as the stack's), "+
				"a no-op handler, no middleware. Full stack: kafkaevents.New, Install (every middleware), AddHandler, metrics, "+
				"retries and DLQ on; its retry and DLQ topics are provisioned before the timer starts. No-op tracing: a "+
				"go.opentelemetry.io/otel/trace/noop provider (the trace context is still extracted and propagated); tracing off: "+
				"kafkaevents.WithoutTracing(), no tracing middleware at all. "+
				"watermill-kafka waits for each acknowledgement before the next message of a partition, so per-message cost shows directly.",
				n, o.size, e.partitions, n))
		s.add(row{name: "bare Watermill router", unit: "msg/s", vals: rates["bare"]})
		s.add(row{name: "full stack, no-op tracing", unit: "msg/s", vals: rates["full"]})
		s.add(row{name: "full stack, OTel SDK (AlwaysSample, batcher, discarding exporter)", unit: "msg/s", vals: rates["sdk"]})
		s.add(row{name: "full stack / bare", unit: "ratio", vals: ratioFull, goal: "≥ 0.90", met: atLeast(0.90), ratio: "full stack/bare"})
		s.add(row{name: "full stack with OTel SDK / bare", unit: "ratio", vals: ratioSDK, ratio: "full stack with OTel SDK/bare"})
		s.add(row{name: "full stack, tracing off (WithoutTracing)", unit: "msg/s", vals: rates["off"]})
		s.add(row{name: "full stack, tracing off / bare", unit: "ratio", vals: ratioOff, ratio: "full stack without tracing/bare"})
		s.add(row{name: "full stack, no-op tracing / tracing off", unit: "ratio", vals: ratioNoopOff, goal: "≥ 0.97", met: atLeast(0.97),
			ratio: "no-op tracing/tracing off"})
		s.add(row{name: "full stack, no-op tracing, WithConcurrency(64)", unit: "msg/s", vals: rates["full-c64"]})
		s.add(row{name: "full stack with WithConcurrency(64) / without", unit: "ratio", vals: ratioConc, goal: "≥ 1.0", met: atLeast(1.0),
			ratio: "no-op handler, concurrency 64/1"})
		s.add(row{name: "bare, handler decoding the JSON payload", unit: "msg/s", vals: rates["bare-json"]})
		s.add(row{name: "full stack, handler decoding the JSON payload", unit: "msg/s", vals: rates["full-json"]})
		s.add(row{name: "full stack / bare, handler decoding the JSON payload", unit: "ratio", vals: ratioJSON, ratio: "full stack/bare with a JSON-decoding handler"})
		s.add(row{name: "first message after start: bare", unit: "ms", vals: firsts["bare"]})
		s.add(row{name: "first message after start: full stack", unit: "ms", vals: firsts["full"]})
		s.add(row{name: "full stack / bare, from the first message to the last (start left out)", unit: "ratio", vals: steadyFull,
			ratio: "full stack/bare from the first message"})
		where := "the client"
		if !e.real {
			where = "the broker included"
		}
		s.add(row{name: "CPU per message, bare (whole process: " + where + ")", unit: "µs", vals: cpus["bare"]})
		s.add(row{name: "CPU per message, full stack (whole process: " + where + ")", unit: "µs", vals: cpus["full"]})
	}
	if o.wants(2) {
		lat, err := e.sendRecordLatency(1000, o.size)
		if err != nil {
			return fmt.Errorf("SendRecord latency: %w", err)
		}
		failures := failuresOf(n)
		fmt.Printf("  Producer.SendRecord round trip, median of 1000 sequential: %s  load %s\n", lat.Round(time.Microsecond), loadAverage())
		s := rep.section("2. Failure path",
			fmt.Sprintf("The same %d messages through the full stack (no-op tracing) with a handler that fails the first delivery "+
				"of every tenth message (%d failures) and succeeds on its retry (retry topic, %s delay, back to the handler "+
				"through the dispatcher). Timed from router.Run until every first delivery was handled, against the same handler "+
				"failing nothing in the same run (it reads the retry count and the key of every message, as the failing one does; "+
				"the retry count is a context lookup at the bottom of the chain, which makes each message's goroutine grow its stack "+
				"once, unlike the no-op handler of figure 1). The retry delay is short so that, as in a service that has been failing "+
				"for a while, the retries are handled while the main topic is read, not after the timed window.", n, failures, failRetryDelay))
		s.add(row{name: "full stack, same handler, no failures", unit: "msg/s", vals: rates["nofail"]})
		s.add(row{name: "full stack, 10% fail once", unit: "msg/s", vals: rates["fail"]})
		s.add(row{name: "10% failing / no failures", unit: "ratio", vals: ratioFail, goal: "≥ 0.85", met: atLeast(0.85), ratio: "failure path/no failures"})
		s.add(row{name: "10% failing / no failures, from the first message to the last", unit: "ratio", vals: steadyFail,
			ratio: "failure path/no failures from the first message"})
		s.add(row{name: "10% failing / the no-op handler of figure 1", unit: "ratio", vals: ratioFailNoop,
			ratio: "failure path/no-op handler without failures"})
		s.add(row{name: "full stack, 10% fail once, at-least-once hand-offs (ExactlyOnceHandoffs off)", unit: "msg/s", vals: rates["fail-alo"]})
		s.add(row{name: "10% failing, exactly-once / at-least-once hand-offs", unit: "ratio", vals: ratioEOS,
			ratio: "exactly-once/at-least-once hand-offs, 10% failing"})
		s.add(row{name: "retries handled within the timed window", unit: "%", vals: inWindow})
		s.add(row{name: "CPU per message, same handler, no failures (whole process)", unit: "µs", vals: cpus["nofail"]})
		s.add(row{name: "CPU per message, 10% failing (whole process)", unit: "µs", vals: cpus["fail"]})
		s.add(row{name: "Producer.SendRecord round trip (median of 1000 sequential calls)", unit: "ms", vals: []float64{ms(lat)}})
		s.add(row{name: fmt.Sprintf("%d failures × that round trip / %d partitions", failures, e.partitions), unit: "ms",
			vals: []float64{ms(lat) * float64(failures) / float64(e.partitions)}})
		s.notes = append(s.notes, "The retry middleware hands a failed message's retry record to the asynchronous producer and "+
			"acknowledges the message at once; the stack's consumer holds the message's offset out of its commits until the "+
			"broker acknowledged the record, so the partition does not wait for the produce round trip. The last two rows are "+
			"what that wait would cost if it were synchronous: the round trip of one Producer.SendRecord, and that cost for "+
			"every failure spread over the partitions. What remains is CPU: each failure is a produce request, a fetch by the "+
			"retry consumer and a second delivery through the router (the CPU per message row).")
	}
	return nil
}
