package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
)

// sendBatch times one Producer.SendBatch of n messages (built beforehand)
// on the producer of a stack with the default configuration.
func (e *env) sendBatch(topic string, n, size int) (time.Duration, error) {
	opts, shutdown := stackOptions(tracingNoop)
	defer shutdown()
	s, err := kafkaevents.New(e.stackConfig("producer"), opts...)
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Close() }()
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: topic, Key: "order-" + strconv.Itoa(i), Value: payload(i, size)}
	}
	runtime.GC()
	start := time.Now()
	res, err := s.Producer().SendBatch(context.Background(), ms)
	took := time.Since(start)
	if err == nil && len(res) != n {
		err = fmt.Errorf("SendBatch returned %d results for %d messages", len(res), n)
	}
	return took, err
}

// watermillPublish times n calls of Watermill's Kafka publisher, one message
// each, with the same sarama settings but no linger: a synchronous producer
// sending one message at a time would only wait for it.
func (e *env) watermillPublish(topic string, n, size int) (time.Duration, error) {
	sc, err := e.saramaConfig(e.name("publisher"))
	if err != nil {
		return 0, err
	}
	sc.Producer.Flush.Frequency = 0
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: e.brokers, Marshaler: kafka.DefaultMarshaler{}, OverwriteSaramaConfig: sc}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer func() { _ = pub.Close() }()
	ms := make([]*message.Message, n)
	for i := range ms {
		ms[i] = message.NewMessage(watermill.NewUUID(), payload(i, size))
	}
	runtime.GC()
	start := time.Now()
	for _, m := range ms {
		if err := pub.Publish(topic, m); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// asyncProduce times n records through a raw sarama AsyncProducer with the
// same settings, from the first input to the last acknowledgement. Keys and
// payloads are made beforehand, as for SendBatch; the records are built as
// they are sent, as a caller of the AsyncProducer does.
func (e *env) asyncProduce(topic string, n, size int) (time.Duration, error) {
	sc, err := e.saramaConfig(e.name("async"))
	if err != nil {
		return 0, err
	}
	p, err := sarama.NewAsyncProducer(e.brokers, sc)
	if err != nil {
		return 0, err
	}
	keys, values := make([]string, n), make([][]byte, n)
	for i := range n {
		keys[i], values[i] = "order-"+strconv.Itoa(i), payload(i, size)
	}
	done := make(chan error, 1)
	runtime.GC()
	start := time.Now()
	go func() {
		var first error
		for range n {
			select {
			case <-p.Successes():
			case perr := <-p.Errors():
				if first == nil {
					first = perr
				}
			}
		}
		done <- first
	}()
	for i := range n {
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(keys[i]), Value: sarama.ByteEncoder(values[i])}
	}
	err = <-done
	took := time.Since(start)
	return took, errors.Join(err, p.Close())
}

func figProducer(e *env, o options, rep *report) error {
	c := o.counts()
	fmt.Printf("\n[4] producer: SendBatch and AsyncProducer %d messages, Watermill publisher %d, %d bytes each\n", c.batch, c.publish, o.size)
	stop, err := startProfile(o, "producer")
	if err != nil {
		return err
	}
	defer stop()
	type variant struct {
		name string
		n    int
		fn   func(topic string, n, size int) (time.Duration, error)
	}
	variants := []variant{
		{"SendBatch", c.batch, e.sendBatch},
		{"AsyncProducer", c.batch, e.asyncProduce},
		{"Watermill publisher", c.publish, e.watermillPublish},
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
	var vsPub, vsAsync []float64
	for run := range o.runs {
		got := map[string]float64{}
		for k := range variants {
			v := variants[(run+k)%len(variants)]
			// A topic of its own: the broker's cost of appending to a log
			// must not depend on what was written before.
			topic := e.name("produce")
			if err := e.createTopics(topic); err != nil {
				return err
			}
			cpu0 := cpuTime()
			took, err := v.fn(topic, v.n, o.size)
			cpu := cpuTime() - cpu0
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			r := float64(v.n) / took.Seconds()
			got[v.name] = r
			rates[v.name] = append(rates[v.name], r)
			fmt.Printf("  run %d %-20s %8.0f msg/s  (%d in %s, %.1f µs CPU/msg with setup)  load %s\n",
				run+1, v.name, r, v.n, took.Round(time.Millisecond), float64(cpu.Microseconds())/float64(v.n), loadAverage())
		}
		vsPub = append(vsPub, got["SendBatch"]/got["Watermill publisher"])
		vsAsync = append(vsAsync, got["SendBatch"]/got["AsyncProducer"])
	}
	defaults := e.stackConfig("defaults")
	defaults.SetDefaults()
	s := rep.section("4. Producer",
		fmt.Sprintf("One Producer.SendBatch call of %d messages (%d bytes, a key each; SendBatch adds an x-correlation-id header) "+
			"on the producer of a stack with the default configuration (acks all, no-op tracing); a raw sarama AsyncProducer "+
			"sending the same %d records (key and value, no header; each ProducerMessage built as it is sent) from the first "+
			"input to the last acknowledgement; and "+
			"Watermill's Kafka publisher (kafka.NewPublisher, a SyncProducer) with one Publish per message, on %d messages. "+
			"All three use the stack's sarama settings (acks all, a %s linger), except that the publisher has no linger: "+
			"sending one message at a time it would only wait for it.", c.batch, o.size, c.batch, c.publish, defaults.Producer.Linger))
	s.add(row{name: "Producer.SendBatch", unit: "msg/s", vals: rates["SendBatch"]})
	s.add(row{name: "sarama AsyncProducer", unit: "msg/s", vals: rates["AsyncProducer"]})
	s.add(row{name: "Watermill publisher, one Publish per message", unit: "msg/s", vals: rates["Watermill publisher"]})
	s.add(row{name: "SendBatch / Watermill publisher", unit: "ratio", vals: vsPub, goal: "≥ 10", met: atLeast(10), ratio: "SendBatch/Watermill publisher"})
	s.add(row{name: "SendBatch / AsyncProducer", unit: "ratio", vals: vsAsync, goal: "≥ 0.80", met: atLeast(0.8), ratio: "SendBatch/AsyncProducer"})
	return nil
}
