package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/internal/bounded"
)

// TopicSpec is a topic the stack creates when it is missing.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Configs are topic configs such as retention.ms and segment.ms.
	Configs map[string]string
}

// Topics returns the retry and DLQ topics the stack needs, with their
// configured partitions, replication factor, retention and segment size.
func (s *Stack) Topics() []TopicSpec {
	var specs []TopicSpec
	if s.retrier != nil {
		for _, name := range s.retrier.Topics() {
			specs = append(specs, TopicSpec{
				Name: name, Partitions: s.cfg.Retry.Partitions, ReplicationFactor: s.cfg.Retry.ReplicationFactor,
				Configs: map[string]string{
					"retention.ms": strconv.FormatInt(s.cfg.Retry.Retention.Milliseconds(), 10),
					"segment.ms":   strconv.FormatInt(s.cfg.Retry.Segment.Milliseconds(), 10),
				},
			})
		}
	}
	if s.keyOrderUsed() {
		// One partition, so that one read gives the whole state; compacted,
		// so that released entries go.
		specs = append(specs, TopicSpec{
			Name: s.ParkedTopic(), Partitions: 1, ReplicationFactor: s.cfg.Retry.ReplicationFactor,
			Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "-1"},
		})
	}
	if s.queue != nil {
		specs = append(specs, TopicSpec{
			Name: s.DLQTopic(), Partitions: s.cfg.DLQ.Partitions, ReplicationFactor: s.cfg.DLQ.ReplicationFactor,
			Configs: map[string]string{"retention.ms": strconv.FormatInt(s.cfg.DLQ.Retention.Milliseconds(), 10)},
		}, TopicSpec{
			// One partition, so that every instance reads the runs in one
			// order; compacted, so that each run keeps its last record.
			Name: s.DLQRunsTopic(), Partitions: 1, ReplicationFactor: s.cfg.DLQ.ReplicationFactor,
			Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "-1"},
		})
	}
	return specs
}

// Provision creates the missing retry and DLQ topics (Topics) and checks the
// existing ones: an existing topic with fewer partitions than configured is
// logged, not changed. It returns an error naming the topic and the broker's
// answer when a creation is refused (for example a replication factor larger
// than the number of brokers). Retry lanes come from the handlers' policies:
// call it after registering them. The router plugin calls it at start.
func (s *Stack) Provision(ctx context.Context) error {
	specs := s.Topics()
	if len(specs) == 0 {
		return nil
	}
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	meta, err := bounded.Call(ctx, func(context.Context) ([]*sarama.TopicMetadata, error) {
		return s.admin.DescribeTopics(names)
	})
	if err != nil {
		return fmt.Errorf("kafkaevents: describe topics %v: %w", names, err)
	}
	existing := map[string]int{}
	for _, m := range meta {
		if m.Err == sarama.ErrNoError {
			existing[m.Name] = len(m.Partitions)
		}
	}
	var errs []error
	for _, sp := range specs {
		if n, ok := existing[sp.Name]; ok {
			if int32(n) < sp.Partitions {
				s.logger.Info("Existing topic has fewer partitions than configured; left as is", map[string]any{
					"topic": sp.Name, "partitions": n, "configured": sp.Partitions,
				})
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		entries := make(map[string]*string, len(sp.Configs))
		for k, v := range sp.Configs {
			entries[k] = &v
		}
		// sarama's CreateTopic takes no context: a broker that holds the
		// request must not hold the start past ctx.
		_, err := bounded.Call(ctx, func(context.Context) (struct{}, error) {
			return struct{}{}, s.admin.CreateTopic(sp.Name, &sarama.TopicDetail{
				NumPartitions: sp.Partitions, ReplicationFactor: sp.ReplicationFactor, ConfigEntries: entries,
			}, false)
		})
		if ctx.Err() != nil {
			return fmt.Errorf("kafkaevents: create topic %s: %w", sp.Name, ctx.Err())
		}
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafkaevents: create topic %s (%d partitions, replication factor %d): %w",
				sp.Name, sp.Partitions, sp.ReplicationFactor, err))
			continue
		}
		s.logger.Info("Topic created", map[string]any{"topic": sp.Name, "partitions": sp.Partitions, "replication_factor": sp.ReplicationFactor})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.waitForTopics(ctx, names)
}

// waitForTopics waits until every broker's metadata lists the topics: a
// KRaft broker may answer CreateTopics before its metadata shows the topic,
// and consumers started right after would not find it.
func (s *Stack) waitForTopics(ctx context.Context, names []string) error {
	for {
		meta, err := bounded.Call(ctx, func(context.Context) ([]*sarama.TopicMetadata, error) {
			return s.admin.DescribeTopics(names)
		})
		missing := ""
		if err == nil {
			for _, m := range meta {
				if m.Err != sarama.ErrNoError || len(m.Partitions) == 0 {
					missing = m.Name
					break
				}
			}
		}
		if err == nil && missing == "" {
			return s.client.RefreshMetadata(names...)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("topic %s not visible yet", missing)
			}
			return fmt.Errorf("kafkaevents: waiting for topics %v: %w (%w)", names, ctx.Err(), err)
		case <-t.C:
		}
	}
}
