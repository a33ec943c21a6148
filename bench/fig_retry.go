package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/wire"
)

// retryDelays are the delays of figure 3, one handler (and lane) each.
var retryDelays = []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second}

// precision is one run of figure 3.
type precision struct {
	lateness []time.Duration // handler time minus x-retry-after, sorted
	early    int
	lib      delayedretry.Lateness // the library's own view (RetryStats)
	took     time.Duration
}

// retryPrecision pre-produces n messages spread over one topic per delay;
// each handler fails the first delivery with its own policy (one attempt,
// the topic's delay) and records, on the retry, how late it came compared
// with its x-retry-after header.
func (e *env) retryPrecision(n, size int) (precision, error) {
	topics := make([]string, len(retryDelays))
	for i := range retryDelays {
		topics[i] = e.name(fmt.Sprintf("retry%d", i))
	}
	if err := e.createTopics(topics...); err != nil {
		return precision{}, err
	}
	for i, t := range topics {
		count := n / len(topics)
		if i < n%len(topics) {
			count++
		}
		if err := e.produce(t, count, func(j int) record { return event(j, size) }); err != nil {
			return precision{}, err
		}
	}
	var (
		mu   sync.Mutex
		late []time.Duration
		bad  error
	)
	retried := newCounter(n)
	sr, err := e.newStackRun(e.stackConfig("precision"), tracingNoop, func(s *kafkaevents.Stack, r *message.Router) error {
		for i, t := range topics {
			d := retryDelays[i]
			_, err := s.AddHandler(r, t, fmt.Sprintf("Bench.retry%s", d), func(msg *message.Message) error {
				if wire.DeliveryOf(msg).RetryCount == 0 {
					return errors.New("fails once")
				}
				now := time.Now()
				due, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(wire.HeaderRetryAfter))
				mu.Lock()
				if err != nil && bad == nil {
					bad = fmt.Errorf("retry without a valid %s: %w", wire.HeaderRetryAfter, err)
				}
				late = append(late, now.Sub(due))
				mu.Unlock()
				retried.add()
				return nil
			}, kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: d, MaxDelay: d}))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return precision{}, err
	}
	defer sr.close()
	stop, err := runRouter(sr.router)
	if err != nil {
		return precision{}, err
	}
	start := time.Now()
	err = retried.wait(2 * time.Minute)
	took := time.Since(start)
	lib := sr.stack.RetryStats().Lateness
	stop()
	if err != nil {
		return precision{}, err
	}
	if bad != nil {
		return precision{}, bad
	}
	slices.Sort(late)
	p := precision{lateness: late, lib: lib, took: took}
	for _, l := range late {
		if l < 0 {
			p.early++
		}
	}
	return p, nil
}

// quantile returns the q-quantile (nearest rank) of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func figRetryPrecision(e *env, o options, rep *report) error {
	n := o.counts().retries
	fmt.Printf("\n[3] retry precision: %d retries, delays %v\n", n, retryDelays)
	stop, err := startProfile(o, "retry")
	if err != nil {
		return err
	}
	defer stop()
	var p50, p99, pmax, early, lp99, lmax []float64
	for run := range o.runs {
		p, err := e.retryPrecision(n, o.size)
		if err != nil {
			return err
		}
		p50 = append(p50, ms(quantile(p.lateness, 0.50)))
		p99 = append(p99, ms(quantile(p.lateness, 0.99)))
		pmax = append(pmax, ms(p.lateness[len(p.lateness)-1]))
		early = append(early, float64(p.early))
		lp99 = append(lp99, ms(p.lib.P99))
		lmax = append(lmax, ms(p.lib.Max))
		fmt.Printf("  run %d: lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d early; library view p99 %.1f ms; all retried %s after start  load %s\n",
			run+1, p50[run], p99[run], pmax[run], p.early, lp99[run], p.took.Round(time.Millisecond), loadAverage())
	}
	s := rep.section("3. Retry precision",
		fmt.Sprintf("%d messages spread over three topics whose handlers each have a policy of one retry after 100 ms, 1 s or 5 s "+
			"(three retry lanes); every first delivery fails, so all %d retries are in flight together. Lateness is the time "+
			"the handler saw the retry minus its %s header (due time, millisecond precision); early is a retry seen before it. "+
			"The library's own view (RetryStats().Lateness, taken just before dispatch) is shown for comparison.",
			n, n, wire.HeaderRetryAfter))
	s.add(row{name: "lateness p50", unit: "ms", vals: p50})
	s.add(row{name: "lateness p99", unit: "ms", vals: p99, goal: "≤ 100 ms", met: atMost(100), ratio: "retry lateness p99"})
	s.add(row{name: "lateness max", unit: "ms", vals: pmax})
	s.add(row{name: "early deliveries", unit: "count", vals: early, goal: "0 in every run", met: atMost(0), worst: true, ratio: "retry early deliveries"})
	s.add(row{name: "library view: lateness p99 (RetryStats)", unit: "ms", vals: lp99})
	s.add(row{name: "library view: lateness max (RetryStats)", unit: "ms", vals: lmax})
	return nil
}
