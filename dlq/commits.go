package dlq

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// groupCommits reads and commits the offsets of a consumer group that has no
// members ("simple" commits, generation -1), which is what a reprocess run
// is: it reads partitions directly and only uses the group to remember where
// it stopped.
type groupCommits struct {
	client sarama.Client
	group  string
}

func (g groupCommits) coordinator() (*sarama.Broker, error) {
	b, err := g.client.Coordinator(g.group)
	if err != nil {
		return nil, fmt.Errorf("dlq: coordinator of group %s: %w", g.group, err)
	}
	return b, nil
}

// fetch returns the committed offset of each partition, or -1 where none is
// committed (including when the group does not exist yet).
func (g groupCommits) fetch(topic string, parts []int32) (map[int32]int64, error) {
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
	}
	b, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	req := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: g.group}
	for _, p := range parts {
		req.AddPartition(topic, p)
	}
	resp, err := b.FetchOffset(req)
	if err != nil {
		return nil, fmt.Errorf("dlq: fetch offsets of group %s: %w", g.group, err)
	}
	if resp.Err != sarama.ErrNoError && !errors.Is(resp.Err, sarama.ErrGroupIDNotFound) {
		return nil, fmt.Errorf("dlq: fetch offsets of group %s: %w", g.group, resp.Err)
	}
	for _, p := range parts {
		blk := resp.GetBlock(topic, p)
		if blk == nil {
			continue
		}
		switch {
		case blk.Err == sarama.ErrNoError:
			out[p] = blk.Offset
		case errors.Is(blk.Err, sarama.ErrGroupIDNotFound), errors.Is(blk.Err, sarama.ErrUnknownTopicOrPartition):
		default:
			return nil, fmt.Errorf("dlq: fetch offset of %s/%d for group %s: %w", topic, p, g.group, blk.Err)
		}
	}
	return out, nil
}

// commit stores offsets (the next offset to read, per partition).
func (g groupCommits) commit(topic string, offsets map[int32]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	b, err := g.coordinator()
	if err != nil {
		return err
	}
	req := &sarama.OffsetCommitRequest{
		Version: 2, ConsumerGroup: g.group, ConsumerGroupGeneration: sarama.GroupGenerationUndefined, RetentionTime: -1,
	}
	for p, o := range offsets {
		req.AddBlock(topic, p, o, 0, "")
	}
	resp, err := b.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("dlq: commit offsets of group %s: %w", g.group, err)
	}
	var errs []error
	for _, parts := range resp.Errors {
		for p, kerr := range parts {
			if kerr != sarama.ErrNoError {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, kerr))
			}
		}
	}
	if len(errs) > 0 {
		_ = g.client.RefreshCoordinator(g.group)
		return fmt.Errorf("dlq: commit offsets of group %s: %w", g.group, errors.Join(errs...))
	}
	return nil
}
