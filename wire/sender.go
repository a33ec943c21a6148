package wire

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
// or DLQ record). The keys and values of its headers share one buffer, so a
// record's headers cost a few allocations instead of two each. The zero
// value is ready to use.
type RecordHeaders struct {
	list []sarama.RecordHeader
	buf  []byte
}

// headerRoom is the buffer room CopyHeaders keeps for each extra header.
const headerRoom = 48

// CopyHeaders returns RecordHeaders holding md's entries except those skip
// reports, with room for extra more.
func CopyHeaders(md map[string]string, extra int, skip func(key string) bool) *RecordHeaders {
	size := extra * headerRoom
	for k, v := range md {
		size += len(k) + len(v)
	}
	h := &RecordHeaders{list: make([]sarama.RecordHeader, 0, len(md)+extra), buf: make([]byte, 0, size)}
	for k, v := range md {
		if !skip(k) {
			h.Set(k, v)
		}
	}
	return h
}

// Headers returns the headers built so far, for a sarama.ProducerMessage.
func (h *RecordHeaders) Headers() []sarama.RecordHeader { return h.list }

// Len returns the number of headers.
func (h *RecordHeaders) Len() int { return len(h.list) }

// Set appends the header k: v.
func (h *RecordHeaders) Set(k, v string) {
	key := h.bytes(k)
	start := len(h.buf)
	h.buf = append(h.buf, v...)
	h.add(key, start)
}

// SetInt appends the header k with n in decimal.
func (h *RecordHeaders) SetInt(k string, n int64) {
	key := h.bytes(k)
	start := len(h.buf)
	h.buf = strconv.AppendInt(h.buf, n, 10)
	h.add(key, start)
}

// SetTime appends a header with t in TimeFormat (UTC, milliseconds).
func (h *RecordHeaders) SetTime(k string, t time.Time) {
	key := h.bytes(k)
	start := len(h.buf)
	h.buf = AppendTime(h.buf, t)
	h.add(key, start)
}

// bytes appends s to the buffer and returns its copy there.
func (h *RecordHeaders) bytes(s string) []byte {
	start := len(h.buf)
	h.buf = append(h.buf, s...)
	return h.buf[start:len(h.buf):len(h.buf)]
}

// add appends the header key with the value written to the buffer from
// start. A slice of the buffer stays valid when a later append moves the
// buffer: it keeps the old array.
func (h *RecordHeaders) add(key []byte, start int) {
	h.list = append(h.list, sarama.RecordHeader{Key: key, Value: h.buf[start:len(h.buf):len(h.buf)]})
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
		h.SetInt(HeaderOriginalPartition, int64(partition))
		h.SetInt(HeaderOriginalOffset, offset)
	}
}
