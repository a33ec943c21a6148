package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/internal/bounded"
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
	sc, err := s.cfg.stackSarama()
	if err != nil {
		return err
	}
	// The retry topics hold only records this service wrote and still owes a
	// delivery, so a partition without a committed offset is read from its
	// start whatever Subscriptions.FromBeginning says: starting at the end
	// would skip the retries that waited there when the instance that owned
	// the partition before crashed or handed it over.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// With static membership the retry consumer is a member of its own
	// group too, with an ID of its own (membership.go).
	sc.Consumer.Group.InstanceId = memberInstanceID(s.cfg.Consumer.InstanceID, "retry")
	shortest := s.retrier.ShortestDelay()
	sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime = retryFetch(shortest, sc.Consumer.Fetch.Min, sc.Consumer.MaxWaitTime)
	if s.txns == nil {
		if err := s.startHandoffProducer(ctx, shortest); err != nil {
			return err
		}
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
		Concurrency: s.concurrencyOf, Claims: claimTracker(s.retryClaims(s.cfg.Consumer.GroupID + ".retry")),
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

// RetryLane is the backlog of one retry topic.
type RetryLane struct {
	// Topic is the retry topic.
	Topic string `json:"topic"`
	// Backlog counts the records of the topic that the retry consumer group
	// has not committed yet: those waiting for their due time and those
	// behind them.
	Backlog int64 `json:"backlog"`
	// OldestDue is the earliest due time of the records the retry consumer
	// holds on this topic; zero when it holds none.
	OldestDue time.Time `json:"oldestDue,omitzero"`
}

// RetryLanes returns the backlog of each retry topic, or an empty list when
// retries are off. ctx bounds the broker calls.
func (s *Stack) RetryLanes(ctx context.Context) ([]RetryLane, error) {
	topics := s.RetryTopics()
	if len(topics) == 0 {
		return []RetryLane{}, nil
	}
	s.mu.Lock()
	c := s.retryConsumer
	s.mu.Unlock()
	oldest := map[string]time.Time{}
	if c != nil {
		for _, h := range c.Held() {
			if o, ok := oldest[h.Topic]; !ok || h.Due.Before(o) {
				oldest[h.Topic] = h.Due
			}
		}
	}
	return bounded.Call(ctx, func(context.Context) ([]RetryLane, error) {
		resp, err := s.admin.ListConsumerGroupOffsets(s.cfg.Consumer.GroupID+".retry", nil)
		if err != nil {
			return nil, err
		}
		out := make([]RetryLane, 0, len(topics))
		for _, t := range topics {
			lane := RetryLane{Topic: t, OldestDue: oldest[t]}
			parts, err := s.client.Partitions(t)
			if err != nil {
				return nil, fmt.Errorf("partitions of %s: %w", t, err)
			}
			for _, p := range parts {
				end, err := s.client.GetOffset(t, p, sarama.OffsetNewest)
				if err != nil {
					return nil, fmt.Errorf("end offset of %s/%d: %w", t, p, err)
				}
				var from int64 // the first offset not committed
				if b := resp.GetBlock(t, p); b != nil && b.Offset >= 0 {
					from = b.Offset
				} else if from, err = s.client.GetOffset(t, p, sarama.OffsetOldest); err != nil {
					return nil, fmt.Errorf("oldest offset of %s/%d: %w", t, p, err)
				}
				lane.Backlog += s.deliverableLag(t, p, from, end)
			}
			out = append(out, lane)
		}
		return out, nil
	})
}
