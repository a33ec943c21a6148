package keyorder

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

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
	// was handled, and of a hand-off marker.
	KindReleased = "released"
	// KindHandedOff marks the hand-off of a pending head as acknowledged
	// (see HeaderHandoff): its key is the head's with "handedOff": true,
	// its value the head's offset in the state topic.
	KindHandedOff = "handed-off"
)

// Headers of the state topic's records.
const (
	// HeaderKind is the entry's kind: head, aside or released.
	HeaderKind = "x-parked-kind"
	// HeaderReason is why a head was parked: "retry" or "dead-lettered".
	HeaderReason = "x-parked-reason"
	// HeaderSince is when the entry was written (RFC 3339).
	HeaderSince = "x-parked-at"
	// HeaderHandoff is "pending" on a head that carries its record: a record
	// set aside that failed when it was delivered, whose only copy was its
	// entry until its retry or DLQ record was acknowledged. Until a
	// KindHandedOff marker names it, the next owner of its partition delivers
	// it again, as a record set aside.
	HeaderHandoff = "x-parked-handoff"
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
// original offset of the record; HandedOff for the hand-off marker of the
// head at that offset.
type entryKey struct {
	Group
	Offset    int64
	HandedOff bool
}

// stateKey is the JSON form of an entryKey, the record key in the state
// topic: readable with any consumer (kcat -f '%k'), and the same bytes for
// the same entry, which compaction needs. A record key that is not valid
// UTF-8 is written in keyBase64 instead of key.
type stateKey struct {
	HandlerID string `json:"handler"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key,omitempty"`
	KeyBase64 []byte `json:"keyBase64,omitempty"`
	HandedOff bool   `json:"handedOff,omitempty"`
}

// encodeKey returns the record key of k.
func encodeKey(k entryKey) []byte {
	sk := stateKey{HandlerID: k.HandlerID, Topic: k.Topic, Partition: k.Partition, Offset: k.Offset, HandedOff: k.HandedOff}
	if utf8.ValidString(k.Key) {
		sk.Key = k.Key
	} else {
		sk.KeyBase64 = []byte(k.Key)
	}
	b, _ := json.Marshal(sk) // strings and numbers only: never fails
	return b
}

var errBadKey = errors.New(`keyorder: state record key is not {"handler","topic","partition","offset","key"}`)

// decodeKey parses a key written by encodeKey.
func decodeKey(b []byte) (entryKey, error) {
	var sk stateKey
	if err := json.Unmarshal(b, &sk); err != nil || sk.HandlerID == "" || sk.Topic == "" || sk.Partition < 0 || sk.Offset < 0 {
		return entryKey{}, errBadKey
	}
	key := sk.Key
	if len(sk.KeyBase64) > 0 {
		key = string(sk.KeyBase64)
	}
	if key == "" {
		return entryKey{}, errBadKey
	}
	return entryKey{Group: Group{HandlerID: sk.HandlerID, Topic: sk.Topic, Partition: sk.Partition, Key: key}, Offset: sk.Offset, HandedOff: sk.HandedOff}, nil
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
	// handled is set on a record set aside once it was delivered and
	// handled here, while its tombstone is on its way: it is not
	// delivered again.
	handled bool
	// pending is set on a head that carries its record (HeaderHandoff);
	// stale on a pending head whose hand-off no marker confirmed when its
	// partition's claim started: it is delivered again, as a record set
	// aside, and does not hold its key meanwhile.
	pending, stale bool
	// handedOff is, for a hand-off marker, the state-topic offset of the
	// head it confirms.
	handedOff int64
	// The record set aside (or carried by a pending head): payload, headers
	// and Watermill UUID.
	uuid    string
	payload []byte
	headers map[string]string
}

// holdsKey reports whether e holds its key: a head, unless stale.
func (e *entry) holdsKey() bool { return e != nil && e.kind == KindHead && !e.stale }

// carries reports whether e carries a record: set aside, or a pending head.
func (e *entry) carries() bool { return e != nil && (e.kind == KindAside || e.pending) }

// pendingHead builds the state record of a head at k that carries its
// record, copied from e.
func pendingHead(topic string, k entryKey, reason string, now time.Time, e *entry) *sarama.ProducerMessage {
	rec := record(topic, k, KindHead, reason, now, e.uuid, e.payload, e.headers)
	rec.Value = sarama.ByteEncoder(nonNil(e.payload))
	rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(HeaderHandoff), Value: []byte("pending")})
	return rec
}

// handedOffMarker builds the marker that the hand-off of the pending head at
// k, written at state offset head, was acknowledged; a tombstone when head
// is negative.
func handedOffMarker(topic string, k entryKey, head int64, now time.Time) *sarama.ProducerMessage {
	k.HandedOff = true
	if head < 0 {
		return record(topic, k, KindReleased, "", now, "", nil, nil)
	}
	rec := record(topic, k, KindHandedOff, "", now, "", nil, nil)
	rec.Value = sarama.StringEncoder(strconv.FormatInt(head, 10))
	return rec
}

// record builds the state record of k, of kind, at now; aside records
// carry payload and headers.
func record(topic string, k entryKey, kind, reason string, now time.Time, uuid string, payload []byte, headers map[string]string) *sarama.ProducerMessage {
	hs := make([]sarama.RecordHeader, 0, len(headers)+4)
	for hk, hv := range headers {
		switch hk {
		case HeaderKind, HeaderReason, HeaderSince, HeaderHandoff, wire.HeaderWatermillUUID:
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
		case HeaderHandoff:
			e.pending = string(h.Value) == "pending"
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
	case k.HandedOff:
		n, err := strconv.ParseInt(string(m.Value), 10, 64)
		if e.kind != KindHandedOff || err != nil || n < 0 {
			return k, nil, errors.New("keyorder: hand-off marker is not a state offset: " + strconv.Quote(string(m.Value)))
		}
		e.handedOff = n
		return k, e, nil
	case e.kind == KindHead && e.pending:
		e.payload, e.headers = m.Value, md
		return k, e, nil
	case e.kind == KindHead:
		return k, e, nil
	case e.kind == KindAside:
		e.payload, e.headers = m.Value, md
		return k, e, nil
	}
	return k, nil, errors.New("keyorder: state record of unknown kind " + strconv.Quote(e.kind))
}
