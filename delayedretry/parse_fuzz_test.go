package delayedretry

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/wire"
)

// FuzzParseRetryRecord feeds arbitrary retry headers, as a producer other
// than the library (or a corrupted record) could write them, to the parser
// the retry consumer runs on every record. It never panics; it either
// reports ErrCorruptRecord, which sends the record to the DLQ, or returns a
// delivery that names a handler and a topic, an attempt >= 1 and the due time
// the header holds. The seed corpus is testdata/fuzz/FuzzParseRetryRecord.
func FuzzParseRetryRecord(f *testing.F) {
	f.Add("OrderService.handle", "order.created", "1", "2026-03-04T05:06:07.089Z", "2026-03-04T05:06:06.000Z", "2", "41", "", []byte("o-1"), "", "")
	f.Add("h", "t", "3", "2026-03-04T05:06:07Z", "", "", "", "2", []byte(nil), "x-retry-count", "9")
	f.Add("", "", "", "", "", "", "", "", []byte{}, "", "")
	f.Add("h", "t", "0", "2026-03-04T05:06:07Z", "", "-1", "-1", "-1", []byte("k"), "", "")
	f.Add("h", "t", "99999999999999999999", "9999-12-31T23:59:59.999999999Z", "", "2147483648", "9223372036854775808", "", []byte("k"), "", "")
	f.Add("h", "t", " 1", "tomorrow", "yesterday", "x", "y", "z", []byte("k"), "x-handler-id", "")
	f.Add("h\x00", "t\xff", "+1", "2026-03-04T05:06:07+25:00", "", "", "", "", []byte("k"), "", "")
	f.Fuzz(func(t *testing.T, handler, topic, count, after, firstFailed, partition, offset, reprocess string, key []byte, extraKey, extraValue string) {
		var hs []*sarama.RecordHeader
		add := func(k, v string) {
			if v != "" {
				hs = append(hs, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
			}
		}
		add(wire.HeaderHandlerID, handler)
		add(wire.HeaderOriginalTopic, topic)
		add(wire.HeaderRetryCount, count)
		add(wire.HeaderRetryAfter, after)
		add(wire.HeaderFirstFailedAt, firstFailed)
		add(wire.HeaderOriginalPartition, partition)
		add(wire.HeaderOriginalOffset, offset)
		add(wire.HeaderReprocessCount, reprocess)
		if extraKey != "" {
			// A second header with the same key as one above: the last one wins.
			hs = append(hs, &sarama.RecordHeader{Key: []byte(extraKey), Value: []byte(extraValue)}, nil)
		}
		rec := &sarama.ConsumerMessage{Topic: "svc.retry.1s", Key: key, Headers: hs}
		hdr := wire.HeaderMap(rec.Headers)

		d, due, err := parseRetryRecord(hdr, rec)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error %v does not wrap ErrCorruptRecord", err)
			}
			return
		}
		if d.HandlerID == "" || d.HandlerID != hdr[wire.HeaderHandlerID] {
			t.Fatalf("handler %q from headers %v", d.HandlerID, hdr)
		}
		if d.Topic == "" || d.Topic != hdr[wire.HeaderOriginalTopic] {
			t.Fatalf("topic %q from headers %v", d.Topic, hdr)
		}
		if n, err := strconv.Atoi(hdr[wire.HeaderRetryCount]); err != nil || n < 1 || d.RetryCount != n {
			t.Fatalf("retry count %d from %q", d.RetryCount, hdr[wire.HeaderRetryCount])
		}
		want, err := time.Parse(time.RFC3339Nano, hdr[wire.HeaderRetryAfter])
		if err != nil || !due.Equal(want) {
			t.Fatalf("due %v from %q", due, hdr[wire.HeaderRetryAfter])
		}
		if d.Source != wire.SourceRetry || !bytes.Equal(d.Key, key) {
			t.Fatalf("delivery %+v for key %q", d, key)
		}
		if d.ReprocessCount < 0 {
			t.Fatalf("negative reprocess count %d", d.ReprocessCount)
		}
		if d.HasOffset {
			p, err1 := strconv.ParseInt(hdr[wire.HeaderOriginalPartition], 10, 32)
			o, err2 := strconv.ParseInt(hdr[wire.HeaderOriginalOffset], 10, 64)
			if err1 != nil || err2 != nil || int64(d.Partition) != p || d.Offset != o {
				t.Fatalf("offset %d/%d from %q/%q", d.Partition, d.Offset, hdr[wire.HeaderOriginalPartition], hdr[wire.HeaderOriginalOffset])
			}
		}
	})
}
