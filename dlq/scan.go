package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/internal/txn"
)

// bounds returns the first offset still in the log and the end offset of a
// partition: the offset the next record will get, or, when the client reads
// read_committed, the last stable offset (txn.End).
func bounds(client sarama.Client, topic string, partition int32) (oldest, end int64, err error) {
	if oldest, err = client.GetOffset(topic, partition, sarama.OffsetOldest); err != nil {
		return 0, 0, fmt.Errorf("dlq: oldest offset of %s/%d: %w", topic, partition, err)
	}
	if end, err = txn.End(client, topic, partition); err != nil {
		return 0, 0, fmt.Errorf("dlq: end offset of %s/%d: %w", topic, partition, err)
	}
	return oldest, end, nil
}

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("stop scan")

// scanIdle is how long a scan waits for its next record before it asks the
// broker whether one is left to deliver (see txn.Deliverable).
const scanIdle = 100 * time.Millisecond

// scanPartition calls fn for each record of partition from offset from up to,
// not including, end. It returns ctx's error if ctx ends first, fn's error
// (other than errStopScan), or nil. Offsets no consumer delivers
// (transaction markers, aborted records) end the scan when nothing
// deliverable is left before end.
func scanPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string, partition int32, from, end int64, fn func(*sarama.ConsumerMessage) error) error {
	if from >= end {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, partition, from)
	if err != nil {
		return fmt.Errorf("dlq: consume %s/%d from %d: %w", topic, partition, from, err)
	}
	defer func() { _ = pc.Close() }()
	next := from
	idle := time.NewTimer(scanIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			more, err := txn.Deliverable(client, topic, partition, next, end)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			idle.Reset(scanIdle)
		case err := <-pc.Errors():
			if err != nil {
				return fmt.Errorf("dlq: consume %s/%d: %w", topic, partition, err)
			}
		case m, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("dlq: consumer of %s/%d closed", topic, partition)
			}
			if m.Offset >= end {
				return nil
			}
			next = m.Offset + 1
			idle.Reset(scanIdle)
			if err := fn(m); err != nil {
				if errors.Is(err, errStopScan) {
					return nil
				}
				return err
			}
			if m.Offset+1 >= end {
				return nil
			}
		}
	}
}
