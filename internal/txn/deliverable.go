package txn

import (
	"fmt"
	"slices"

	"github.com/IBM/sarama"
)

// tailFetchBytes is how much one fetch of Deliverable reads.
const tailFetchBytes = 1 << 20

// Deliverable reports whether partition holds, from offset from up to,
// not including, end, a record that a consumer at the client's isolation
// level delivers. Offsets a consumer never delivers are transaction markers
// and, under read_committed, the records of aborted transactions: a scan that
// waits for them would wait for ever, and a lag that counts them never
// reaches 0. It reports true when it cannot tell yet (a transaction below
// end is still open), so that a scan waits for the consumer.
func Deliverable(client sarama.Client, topic string, partition int32, from, end int64) (bool, error) {
	n, open, err := CountDeliverable(client, topic, partition, from, end, 1)
	return n > 0 || open, err
}

// CountDeliverable counts the records of partition from offset from up to,
// not including, end that a consumer at the client's isolation level
// delivers (see Deliverable), stopping at limit. open is true when a
// transaction still open below end hides records that are not counted.
func CountDeliverable(client sarama.Client, topic string, partition int32, from, end, limit int64) (n int64, open bool, err error) {
	committed := client.Config().Consumer.IsolationLevel == sarama.ReadCommitted
	for from < end && n < limit {
		b, err := client.Leader(topic, partition)
		if err != nil {
			return n, false, fmt.Errorf("txn: leader of %s/%d: %w", topic, partition, err)
		}
		req := &sarama.FetchRequest{Version: 4, MaxBytes: tailFetchBytes, Isolation: client.Config().Consumer.IsolationLevel}
		req.AddBlock(topic, partition, from, tailFetchBytes, -1)
		resp, err := b.Fetch(req)
		if err != nil {
			return n, false, fmt.Errorf("txn: fetch %s/%d at %d: %w", topic, partition, from, err)
		}
		blk := resp.GetBlock(topic, partition)
		if blk == nil {
			return n, false, fmt.Errorf("txn: fetch %s/%d at %d: no answer for the partition", topic, partition, from)
		}
		if blk.Err != sarama.ErrNoError {
			return n, false, fmt.Errorf("txn: fetch %s/%d at %d: %w", topic, partition, from, blk.Err)
		}
		found, next := scanBatches(blk, from, end, committed, limit-n)
		n += found
		switch {
		case next > from:
			from = next
		case committed && blk.LastStableOffset >= 0 && blk.LastStableOffset < end:
			return n, true, nil // an open transaction: not decided yet
		default:
			return n, false, nil // nothing more in the log below end
		}
	}
	return n, false, nil
}

// scanBatches counts the deliverable records of blk in [from, end), up to
// limit, and returns the offset after the last batch it read. Under read_committed a
// batch of a producer whose transaction blk lists as aborted is skipped until
// that producer's next marker, as the Java consumer does.
func scanBatches(blk *sarama.FetchResponseBlock, from, end int64, committed bool, limit int64) (found, next int64) {
	next = from
	aborted := slices.Clone(blk.AbortedTransactions)
	slices.SortFunc(aborted, func(a, b *sarama.AbortedTransaction) int { return int(a.FirstOffset - b.FirstOffset) })
	open := map[int64]bool{}
	for _, rs := range blk.RecordsSet {
		if rs.RecordBatch == nil {
			if rs.MsgSet == nil {
				continue
			}
			for _, mb := range rs.MsgSet.Messages {
				if mb.Offset >= from && mb.Offset < end {
					found++
					if found >= limit {
						return found, mb.Offset + 1
					}
				}
				next = max(next, mb.Offset+1)
			}
			continue
		}
		rb := rs.RecordBatch
		if rb.PartialTrailingRecord && len(rb.Records) == 0 {
			break
		}
		last := rb.FirstOffset + int64(rb.LastOffsetDelta)
		for committed && len(aborted) > 0 && aborted[0].FirstOffset <= last {
			open[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		next = max(next, last+1)
		if rb.Control {
			delete(open, rb.ProducerID)
			continue
		}
		if rb.IsTransactional && open[rb.ProducerID] {
			continue
		}
		for _, r := range rb.Records {
			if off := rb.FirstOffset + r.OffsetDelta; off >= from && off < end {
				found++
				if found >= limit {
					return found, off + 1
				}
			}
		}
	}
	return found, next
}

// End returns the end offset of partition as a consumer at the client's
// isolation level sees it: under read_committed, the last stable offset
// (every transaction below it is decided), so that a reader that reads up to
// it never waits for a transaction still open, such as one a killed process
// left until the broker aborts it; the high-water mark otherwise.
func End(client sarama.Client, topic string, partition int32) (int64, error) {
	conf := client.Config()
	if conf.Consumer.IsolationLevel != sarama.ReadCommitted {
		return client.GetOffset(topic, partition, sarama.OffsetNewest)
	}
	b, err := client.Leader(topic, partition)
	if err != nil {
		return 0, fmt.Errorf("txn: leader of %s/%d: %w", topic, partition, err)
	}
	req := sarama.NewOffsetRequest(conf.Version)
	req.IsolationLevel = sarama.ReadCommitted
	req.AddBlock(topic, partition, sarama.OffsetNewest, 1)
	resp, err := b.GetAvailableOffsets(req)
	if err != nil {
		return 0, fmt.Errorf("txn: stable offset of %s/%d: %w", topic, partition, err)
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil {
		return 0, fmt.Errorf("txn: stable offset of %s/%d: no answer for the partition", topic, partition)
	}
	if blk.Err != sarama.ErrNoError {
		return 0, fmt.Errorf("txn: stable offset of %s/%d: %w", topic, partition, blk.Err)
	}
	if len(blk.Offsets) > 0 && req.Version == 0 {
		return blk.Offsets[0], nil
	}
	return blk.Offset, nil
}
