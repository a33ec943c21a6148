package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

const dlqTopics = 10

// dlqRecord is record i of a DLQ holding the failures of dlqTopics topics,
// with the headers the DLQ middleware writes.
func dlqRecord(i, size int, topics []string) record {
	t := i % len(topics)
	now := time.Now().UTC().Format(wire.TimeFormat)
	h := func(k, v string) sarama.RecordHeader { return sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	return record{
		key:   "order-" + strconv.Itoa(i),
		value: payload(i, size),
		headers: []sarama.RecordHeader{
			h(wire.HeaderWatermillUUID, "uuid-"+strconv.Itoa(i)),
			h(wire.HeaderOriginalTopic, topics[t]),
			h(wire.HeaderOriginalPartition, strconv.Itoa(i%3)),
			h(wire.HeaderOriginalOffset, strconv.Itoa(i/3)),
			h(wire.HeaderHandlerID, "Bench.dlq"+strconv.Itoa(t)),
			h(wire.HeaderRetryCount, "3"),
			h(wire.HeaderErrorMessage, "boom"),
			h(wire.HeaderFailedAt, now),
			h(wire.HeaderDLQStoredAt, now),
			h(wire.HeaderDLQReason, string(wire.ReasonRetriesExhausted)),
			h(wire.HeaderCorrelationID, "corr-bench-"+strconv.Itoa(i)),
		},
	}
}

// scanDLQ reads every partition of topic from the oldest offset to the end
// with a bare sarama consumer and counts the records of original topic want.
func (e *env) scanDLQ(client sarama.Client, topic, want string) (int, time.Duration, error) {
	start := time.Now()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = consumer.Close() }()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, 0, err
	}
	var matched atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, err
		}
		if end <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			return 0, 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = pc.Close() }()
			for {
				select {
				case m := <-pc.Messages():
					for _, h := range m.Headers {
						if string(h.Key) == wire.HeaderOriginalTopic && string(h.Value) == want {
							matched.Add(1)
						}
					}
					if m.Offset+1 >= end {
						return
					}
				case perr := <-pc.Errors():
					errs[i] = perr
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(matched.Load()), time.Since(start), errors.Join(errs...)
}

func figReprocess(e *env, o options, rep *report) error {
	per := o.counts().dlqPer
	total := per * dlqTopics
	cfg := e.stackConfig("reprocess")
	dlqTopic := cfg.ServiceName + ".dlq"
	topics := make([]string, dlqTopics)
	for i := range topics {
		topics[i] = e.name("orig" + strconv.Itoa(i))
	}
	if err := e.createTopics(append([]string{dlqTopic}, topics[:o.runs]...)...); err != nil {
		return err
	}
	t0 := time.Now()
	if err := e.produce(dlqTopic, total, func(i int) record { return dlqRecord(i, o.size, topics) }); err != nil {
		return err
	}
	fmt.Printf("\n[5] DLQ reprocess: %d records from %d topics written in %s\n", total, dlqTopics, time.Since(t0).Round(time.Millisecond))

	handled := make([]atomic.Int64, o.runs)
	sr, err := e.newStackRun(cfg, tracingNoop, func(s *kafkaevents.Stack, r *message.Router) error {
		for i := range o.runs {
			if _, err := s.AddHandler(r, topics[i], "Bench.dlq"+strconv.Itoa(i), func(*message.Message) error {
				handled[i].Add(1)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer sr.close()
	stopRouter, err := runRouter(sr.router)
	if err != nil {
		return err
	}
	defer stopRouter()
	sc, err := e.saramaConfig(e.name("scan"))
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(e.brokers, sc)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	stop, err := startProfile(o, "reprocess")
	if err != nil {
		return err
	}
	defer stop()

	var scanT, reprT, ratio []float64
	for run := range o.runs {
		var scanned int
		var scanTook time.Duration
		var p dlq.Progress
		var reprTook time.Duration
		steps := []func() error{
			func() error {
				n, took, err := e.scanDLQ(client, dlqTopic, topics[run])
				scanned, scanTook = n, took
				return err
			},
			func() error {
				start := time.Now()
				var err error
				p, err = sr.stack.Reprocessor().Reprocess(context.Background(), dlq.ReprocessOptions{Topic: topics[run], BatchSize: 1000, Timeout: 10 * time.Minute})
				reprTook = time.Since(start)
				return err
			},
		}
		if run%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		if scanned != per || p.Reprocessed != int64(per) || handled[run].Load() != int64(per) {
			return fmt.Errorf("run %d: scan matched %d, reprocess reported %d (%s), handler saw %d; want %d",
				run+1, scanned, p.Reprocessed, p.State, handled[run].Load(), per)
		}
		scanT = append(scanT, ms(scanTook))
		reprT = append(reprT, ms(reprTook))
		ratio = append(ratio, reprTook.Seconds()/scanTook.Seconds())
		fmt.Printf("  run %d: bare scan %s, Reprocess %s (%d reprocessed, %d skipped), ratio %.2f  load %s\n",
			run+1, scanTook.Round(time.Millisecond), reprTook.Round(time.Millisecond), p.Reprocessed, p.Skipped, ratio[run], loadAverage())
	}
	s := rep.section("5. DLQ reprocess",
		fmt.Sprintf("A DLQ of %d partitions holding %d records (%d bytes) from %d topics, %d each, interleaved, with the headers "+
			"the DLQ middleware writes. Reprocess of one topic (BatchSize 1000, a fresh topic, hence a fresh reprocess group, "+
			"in each run) reads the whole DLQ, dispatches that topic's %d records to its handler through the running router "+
			"(full middleware chain, no-op handler) and commits; the bare scan reads the same DLQ from the oldest offset to the "+
			"end with a sarama consumer on all partitions in parallel and counts the same records.",
			e.partitions, total, o.size, dlqTopics, per, per))
	s.add(row{name: "bare sarama scan", unit: "ms", vals: scanT})
	s.add(row{name: "Reprocessor.Reprocess", unit: "ms", vals: reprT})
	s.add(row{name: "Reprocess / bare scan (time)", unit: "ratio", vals: ratio, goal: "≤ 3", met: atMost(3), ratio: "DLQ reprocess/bare scan (time)"})
	return nil
}
