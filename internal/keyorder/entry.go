package keyorder

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/wire"
)

// The kinds of entry, in HeaderKind.
const (
	// KindHead is the record a key waits behind: in a retry lane, or in the
	// DLQ when dead-lettered keys are held.
	KindHead = "head"
	// KindAside is a record set aside behind the head; the entry's value is
	// its payload, its headers are the record's.
	KindAside = "aside"
	// KindReleased is the tombstone of a head or of a record set aside that
	// was handled.
	KindReleased = "released"
)

// Headers of the state topic's records.
const (
	// HeaderKind is the entry's kind: head, aside or released.
	HeaderKind = "x-parked-kind"
	// HeaderReason is why a head was parked: "retry" or "dead-lettered".
	HeaderReason = "x-parked-reason"
	// HeaderSince is when the entry was written (RFC 3339).
	HeaderSince = "x-parked-at"
)

// Reasons of a head.
const (
	ReasonRetry        = "retry"
	ReasonDeadLettered = "dead-lettered"
	ReasonOperator     = "operator"
)

// Group names a parked key: the handler, the original topic and partition,
// and the key.
type Group struct {
	HandlerID string
	Topic     string
	Partition int32
	Key       string
}

// entryKey is the key of an entry in the state topic: its group and the
// original offset of the record.
type entryKey struct {
	Group
	Offset int64
}

// encodeKey returns the record key of k: handler ID, topic, partition and
// offset on lines of their own, then the record key's bytes as they are
// (after the fourth newline, so any bytes may follow).
func encodeKey(k entryKey) []byte {
	b := make([]byte, 0, len(k.HandlerID)+len(k.Topic)+len(k.Key)+24)
	b = append(b, k.HandlerID...)
	b = append(b, '\n')
	b = append(b, k.Topic...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(k.Partition), 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, k.Offset, 10)
	b = append(b, '\n')
	return append(b, k.Key...)
}

var errBadKey = errors.New("keyorder: state record key is not handler\\ntopic\\npartition\\noffset\\nkey")

// decodeKey parses a key written by encodeKey.
func decodeKey(b []byte) (entryKey, error) {
	parts := bytes.SplitN(b, []byte{'\n'}, 5)
	if len(parts) != 5 || len(parts[0]) == 0 || len(parts[1]) == 0 {
		return entryKey{}, errBadKey
	}
	p, err1 := strconv.ParseInt(string(parts[2]), 10, 32)
	o, err2 := strconv.ParseInt(string(parts[3]), 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return entryKey{}, errBadKey
	}
	return entryKey{Group: Group{HandlerID: string(parts[0]), Topic: string(parts[1]), Partition: int32(p), Key: string(parts[4])}, Offset: o}, nil
}

// entry is the state of one live entry.
type entry struct {
	kind   string
	reason string
	since  time.Time
	// logOffset is the entry's offset in the state topic.
	logOffset int64
	// gen counts the times the head was parked again in this process
	// (Park on a head): a delivery of the head releases it only when no
	// Park came during it.
	gen int
	// The record set aside: payload, headers and Watermill UUID.
	uuid    string
	payload []byte
	headers map[string]string
}

// record builds the state record of k, of kind, at now; aside records
// carry payload and headers.
func record(topic string, k entryKey, kind, reason string, now time.Time, uuid string, payload []byte, headers map[string]string) *sarama.ProducerMessage {
	hs := make([]sarama.RecordHeader, 0, len(headers)+4)
	for hk, hv := range headers {
		switch hk {
		case HeaderKind, HeaderReason, HeaderSince, wire.HeaderWatermillUUID:
			continue
		}
		hs = append(hs, sarama.RecordHeader{Key: []byte(hk), Value: []byte(hv)})
	}
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderKind), Value: []byte(kind)},
		sarama.RecordHeader{Key: []byte(HeaderSince), Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	if reason != "" {
		hs = append(hs, sarama.RecordHeader{Key: []byte(HeaderReason), Value: []byte(reason)})
	}
	if uuid != "" {
		hs = append(hs, sarama.RecordHeader{Key: []byte(wire.HeaderWatermillUUID), Value: []byte(uuid)})
	}
	rec := &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.ByteEncoder(encodeKey(k)), Headers: hs, Timestamp: now}
	switch kind {
	case KindReleased:
		// a tombstone: no value
	case KindAside:
		rec.Value = sarama.ByteEncoder(nonNil(payload))
	default:
		rec.Value = sarama.StringEncoder(kind)
	}
	return rec
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// decode reads one record of the state topic: its key, and its entry (nil
// for a tombstone).
func decode(m *sarama.ConsumerMessage) (entryKey, *entry, error) {
	k, err := decodeKey(m.Key)
	if err != nil {
		return k, nil, err
	}
	e := &entry{logOffset: m.Offset, since: m.Timestamp}
	var md map[string]string
	for _, h := range m.Headers {
		if h == nil {
			continue
		}
		switch key := string(h.Key); key {
		case HeaderKind:
			e.kind = string(h.Value)
		case HeaderReason:
			e.reason = string(h.Value)
		case HeaderSince:
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				e.since = t
			}
		case wire.HeaderWatermillUUID:
			e.uuid = string(h.Value)
		default:
			if md == nil {
				md = map[string]string{}
			}
			md[key] = string(h.Value)
		}
	}
	switch {
	case m.Value == nil || e.kind == KindReleased:
		return k, nil, nil
	case e.kind == KindHead:
		return k, e, nil
	case e.kind == KindAside:
		e.payload, e.headers = m.Value, md
		return k, e, nil
	}
	return k, nil, errors.New("keyorder: state record of unknown kind " + strconv.Quote(e.kind))
}
