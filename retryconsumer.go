package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/delayedretry"
)

// retryFetchMinBytes is how much data a fetch of the retry consumer waits for
// (unless its wait ends first): a few hundred retry records.
const retryFetchMinBytes = 64 << 10

// retryFetch returns the retry consumer's fetch minimum and wait. A retry
// record is due at least shortest after it was written, so the broker may
// hold a fetch for a quarter of that (at most maxWait) to answer with many
// records instead of one: one fetch, and one wake-up of each consumer
// goroutine, per batch rather than per record, while every record is still
// read long before it is due. A larger configured minimum is kept; with
// shortest under 4ms the configured minimum and wait are kept as they are.
func retryFetch(shortest time.Duration, minBytes int32, maxWait time.Duration) (int32, time.Duration) {
	wait := (shortest / 4).Truncate(time.Millisecond)
	if wait < time.Millisecond {
		return minBytes, maxWait
	}
	return max(minBytes, retryFetchMinBytes), min(wait, maxWait)
}

// handoffMaxLinger caps the linger of the retry hand-off producer.
const handoffMaxLinger = 25 * time.Millisecond

// handoffLinger returns how long the producer of the retry records that are
// handed off lets them gather: a quarter of the shortest retry delay, at most
// 25ms, and never less than the stack's own linger. A retry record is due at
// least shortest after the failure; written within a quarter of that, and
// fetched within another quarter (retryFetch), it is read long before it is
// due, while the broker gets a produce request per 25ms instead of per 5ms.
func handoffLinger(shortest, linger time.Duration) time.Duration {
	return max(linger, min((shortest/4).Truncate(time.Millisecond), handoffMaxLinger))
}

// startHandoffProducer gives the retry records that are handed off a
// producer of their own, on a client of its own, when they may linger
// longer than the stack's producer does; s.mu is held.
func (s *Stack) startHandoffProducer(ctx context.Context, shortest time.Duration) error {
	linger := handoffLinger(shortest, s.cfg.Producer.Linger)
	if linger <= max(s.cfg.Producer.Linger, 0) || s.handoff.held.Load() != nil {
		return nil
	}
	sc, err := s.cfg.producerSarama()
	if err != nil {
		return err
	}
	sc.Producer.Flush.Frequency = linger
	client, err := s.connectClient(ctx, "connecting the retry producer", sc)
	if err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: retry producer client: %w", err))
	}
	p, err := newAsyncProducer(client, s.tracer)
	if err != nil {
		_ = client.Close()
		return err
	}
	s.handoffClient = client
	s.handoff.held.Store(p)
	return nil
}

// handoffSender is the retry middleware's Sender. The retry records it
// hands off while their original's offset is held go through a producer
// that lingers longer (startHandoffProducer), once the retry consumer runs;
// the records the middleware waits for go through the stack's producer,
// which answers sooner.
type handoffSender struct {
	*Producer
	held atomic.Pointer[Producer]
}

// SendRecordAsync implements wire.AsyncSender.
func (h *handoffSender) SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error)) {
	if p := h.held.Load(); p != nil {
		p.SendRecordAsync(ctx, rec, done)
		return
	}
	h.Producer.SendRecordAsync(ctx, rec, done)
}

// startRetryConsumer connects the retry consumer (and the hand-off
// producer) and starts it; ctx (the context given to NewContext) and
// Config.StartupTimeout bound each connect.
func (s *Stack) startRetryConsumer(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kafkaevents: stack is closed")
	}
	if s.started || s.retrier == nil {
		return nil
	}
	// A consumer group gets a config of its own: sticky balance strategies
	// keep state and must not be shared with the main group.
	sc, err := s.cfg.Sarama()
	if err != nil {
		return err
	}
	// The retry topics hold only records this service wrote and still owes a
	// delivery, so a partition without a committed offset is read from its
	// start whatever Subscriptions.FromBeginning says: starting at the end
	// would skip the retries that waited there when the instance that owned
	// the partition before crashed or handed it over.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	shortest := s.retrier.ShortestDelay()
	sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime = retryFetch(shortest, sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime)
	if err := s.startHandoffProducer(ctx, shortest); err != nil {
		return err
	}
	client, err := s.connectClient(ctx, "connecting the retry consumer", sc)
	if err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: retry consumer client: %w", err))
	}
	var dead delayedretry.DeadLetterFunc
	if s.queue != nil {
		dead = s.queue.StoreConsumed
	}
	c, err := delayedretry.NewConsumer(delayedretry.ConsumerConfig{
		Client: client, GroupID: s.cfg.Consumer.GroupID + ".retry", Topics: s.retrier.Topics(),
		Dispatcher: s.dispatcher, DeadLetter: dead, Metrics: s.retryStats, MaxWait: s.cfg.Retry.Retention,
		Concurrency: s.concurrencyOf,
	}, s.logger)
	if err != nil {
		_ = client.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.retryClient, s.retryConsumer, s.cancel, s.started = client, c, cancel, true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := c.Run(ctx); err != nil {
			s.logger.Error("Retry consumer stopped", err, nil)
		}
	}()
	return nil
}

// RetryEnabled reports whether retries are on.
func (s *Stack) RetryEnabled() bool { return s.retrier != nil }

// RetryRunning reports whether the retry-topic consumer is consuming.
func (s *Stack) RetryRunning() bool {
	s.mu.Lock()
	c := s.retryConsumer
	s.mu.Unlock()
	return c != nil && c.Running()
}

// RetryTopics returns the retry topics (nil when retries are off).
func (s *Stack) RetryTopics() []string {
	if s.retrier == nil {
		return nil
	}
	return s.retrier.Topics()
}

// RetryStats returns the retry counters.
func (s *Stack) RetryStats() delayedretry.Stats { return s.retryStats.Stats() }

// connectClient opens a sarama client to the brokers, waiting at most
// Config.StartupTimeout and no longer than ctx lasts (sarama's connect takes
// no context); a client that connects after the wait ended is closed.
func (s *Stack) connectClient(ctx context.Context, what string, sc *sarama.Config) (sarama.Client, error) {
	wait, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(s.cfg.Brokers, sc)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-wait.Done():
		go func() {
			if r := <-ch; r.err == nil {
				_ = r.c.Close()
			}
		}()
		return nil, s.startupError(ctx, what)
	}
}
