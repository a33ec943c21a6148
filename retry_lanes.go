package kafkaevents

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/internal/bounded"
)

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
				lane.Backlog += max(end-from, 0)
			}
			out = append(out, lane)
		}
		return out, nil
	})
}
