package dlq

import (
	"errors"
	"fmt"
	"maps"
	"sync"

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
	out, _, err := g.fetchWithMetadata(topic, parts)
	return out, err
}

// fetchWithMetadata is fetch, with the metadata committed with each offset.
func (g groupCommits) fetchWithMetadata(topic string, parts []int32) (map[int32]int64, map[int32]string, error) {
	out := make(map[int32]int64, len(parts))
	md := make(map[int32]string, len(parts))
	for _, p := range parts {
		out[p] = -1
	}
	b, err := g.coordinator()
	if err != nil {
		return nil, nil, err
	}
	req := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: g.group}
	for _, p := range parts {
		req.AddPartition(topic, p)
	}
	resp, err := b.FetchOffset(req)
	if err != nil {
		return nil, nil, fmt.Errorf("dlq: fetch offsets of group %s: %w", g.group, err)
	}
	if resp.Err != sarama.ErrNoError && !errors.Is(resp.Err, sarama.ErrGroupIDNotFound) {
		return nil, nil, fmt.Errorf("dlq: fetch offsets of group %s: %w", g.group, resp.Err)
	}
	for _, p := range parts {
		blk := resp.GetBlock(topic, p)
		if blk == nil {
			continue
		}
		switch {
		case blk.Err == sarama.ErrNoError:
			out[p], md[p] = blk.Offset, blk.Metadata
		case errors.Is(blk.Err, sarama.ErrGroupIDNotFound), errors.Is(blk.Err, sarama.ErrUnknownTopicOrPartition):
		default:
			return nil, nil, fmt.Errorf("dlq: fetch offset of %s/%d for group %s: %w", topic, p, g.group, blk.Err)
		}
	}
	return out, md, nil
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

// batchCommits collects a run's position in each partition (the offset after
// the last record done in a row) and commits it every size records done and
// at the end. Commits go out one at a time, so that an older snapshot never
// lands after a newer one.
type batchCommits struct {
	to    groupCommits
	topic string
	size  int64

	commitMu sync.Mutex // held while a commit is on its way

	mu       sync.Mutex
	next     map[int32]int64
	dirty    bool // next changed since the last commit
	finished int64
}

func newBatchCommits(to groupCommits, topic string, size int) *batchCommits {
	return &batchCommits{to: to, topic: topic, size: int64(size), next: map[int32]int64{}}
}

// mark records that partition's position moved to next.
func (b *batchCommits) mark(partition int32, next int64) {
	b.mu.Lock()
	b.next[partition] = next
	b.dirty = true
	b.mu.Unlock()
}

// recordDone counts one record done and commits when that completes a batch.
func (b *batchCommits) recordDone() error {
	b.mu.Lock()
	b.finished++
	full := b.finished%b.size == 0
	b.mu.Unlock()
	if full {
		return b.commit()
	}
	return nil
}

// commit commits the positions marked, if any changed since the last commit.
func (b *batchCommits) commit() error {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	snapshot := maps.Clone(b.next)
	b.dirty = false
	b.mu.Unlock()
	return b.to.commit(b.topic, snapshot)
}
