package middleware

import (
	"context"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Sender publishes one record and returns once the broker acknowledged it
// (or with the error). On success rec.Partition and rec.Offset are set. The
// kafkaevents Producer implements it: it stamps the correlation ID, records a
// send span and injects the trace context.
type Sender interface {
	SendRecord(ctx context.Context, rec *sarama.ProducerMessage) error
}

// HeaderMap returns the headers of a consumed record as a map, the last value
// winning when a key repeats; nil entries are skipped.
func HeaderMap(hs []*sarama.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if h != nil {
			m[string(h.Key)] = string(h.Value)
		}
	}
	return m
}

// RecordHeaders builds the headers of a record the library writes (a retry
// or DLQ record).
type RecordHeaders []sarama.RecordHeader

// CopyHeaders returns RecordHeaders holding md's entries except those skip
// reports, with room for extra more.
func CopyHeaders(md map[string]string, extra int, skip func(key string) bool) RecordHeaders {
	h := make(RecordHeaders, 0, len(md)+extra)
	for k, v := range md {
		if !skip(k) {
			h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
	}
	return h
}

// Set appends the header k: v.
func (h *RecordHeaders) Set(k, v string) {
	*h = append(*h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
}

// SetOrigin appends the headers that name where the message came from: its
// Watermill UUID (unless empty), HeaderOriginalTopic and, when hasOffset,
// HeaderOriginalPartition and HeaderOriginalOffset.
func (h *RecordHeaders) SetOrigin(uuid, topic string, hasOffset bool, partition int32, offset int64) {
	if uuid != "" {
		h.Set(HeaderWatermillUUID, uuid)
	}
	h.Set(HeaderOriginalTopic, topic)
	if hasOffset {
		h.Set(HeaderOriginalPartition, strconv.FormatInt(int64(partition), 10))
		h.Set(HeaderOriginalOffset, strconv.FormatInt(offset, 10))
	}
}

// SetTime appends a header with t in TimeFormat (UTC, milliseconds).
func (h *RecordHeaders) SetTime(k string, t time.Time) {
	*h = append(*h, sarama.RecordHeader{Key: []byte(k), Value: AppendTime(make([]byte, 0, len(TimeFormat)), t)})
}
