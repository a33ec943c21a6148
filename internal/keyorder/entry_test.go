package keyorder

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateKeysRoundTrip(t *testing.T) {
	for _, key := range []string{"o-42", "a\nb|c\"d", "\xff\xfe binary"} {
		k := entryKey{Group: Group{HandlerID: "Orders.events", Topic: "orders.events", Partition: 2, Key: key}, Offset: 17}
		got, err := decodeKey(encodeKey(k))
		require.NoError(t, err, "%q", key)
		assert.Equal(t, k, got)
	}
	assert.JSONEq(t, `{"handler":"H","topic":"t","partition":0,"offset":1,"key":"K"}`,
		string(encodeKey(entryKey{Group: Group{HandlerID: "H", Topic: "t", Key: "K"}, Offset: 1})))
	for _, bad := range []string{"", "{}", "not json", `{"handler":"H","topic":"t","partition":-1,"offset":1,"key":"K"}`, `{"handler":"H","topic":"t","partition":0,"offset":1}`} {
		_, err := decodeKey([]byte(bad))
		assert.ErrorIs(t, err, errBadKey, "%q", bad)
	}
}

// TestStateRecordsDecode: what record writes, decode reads back; a record
// of an unknown kind is an error, a tombstone is no entry.
func TestStateRecordsDecode(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	k := entryKey{Group: Group{HandlerID: "H", Topic: "t", Partition: 1, Key: "K"}, Offset: 9}
	consumed := func(rec *sarama.ProducerMessage) *sarama.ConsumerMessage {
		m := &sarama.ConsumerMessage{Offset: 3, Timestamp: now}
		m.Key, _ = rec.Key.Encode()
		if rec.Value != nil {
			m.Value, _ = rec.Value.Encode()
		}
		for _, h := range rec.Headers {
			m.Headers = append(m.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
		return m
	}
	_, e, err := decode(consumed(record("s", k, KindAside, "", now, "u-1", []byte("payload"), map[string]string{"x-a": "1"})))
	require.NoError(t, err)
	require.NotNil(t, e)
	assert.Equal(t, KindAside, e.kind)
	assert.Equal(t, "payload", string(e.payload))
	assert.Equal(t, "u-1", e.uuid)
	assert.Equal(t, map[string]string{"x-a": "1"}, e.headers)

	_, e, err = decode(consumed(record("s", k, KindHead, ReasonDeadLettered, now, "", nil, nil)))
	require.NoError(t, err)
	require.NotNil(t, e)
	assert.Equal(t, ReasonDeadLettered, e.reason)
	assert.True(t, e.since.Equal(now))

	_, e, err = decode(consumed(record("s", k, KindReleased, "", now, "", nil, nil)))
	require.NoError(t, err)
	assert.Nil(t, e, "a tombstone")

	_, e, err = decode(consumed(pendingHead("s", k, ReasonRetry, now, &entry{uuid: "u-1", payload: []byte("payload"), headers: map[string]string{"x-a": "1"}})))
	require.NoError(t, err)
	require.NotNil(t, e)
	assert.True(t, e.pending && e.holdsKey() && e.carries(), "a pending head holds its key and carries its record")
	assert.Equal(t, "payload", string(e.payload))
	assert.Equal(t, "u-1", e.uuid)
	assert.Equal(t, map[string]string{"x-a": "1"}, e.headers)

	mk, e, err := decode(consumed(handedOffMarker("s", k, 42, now)))
	require.NoError(t, err)
	require.NotNil(t, e)
	assert.True(t, mk.HandedOff)
	assert.Equal(t, k.Offset, mk.Offset)
	assert.Equal(t, int64(42), e.handedOff)
	_, e, err = decode(consumed(handedOffMarker("s", k, -1, now)))
	require.NoError(t, err)
	assert.Nil(t, e, "the marker's tombstone")
	bad := consumed(handedOffMarker("s", k, 42, now))
	bad.Value = []byte("not an offset")
	_, _, err = decode(bad)
	assert.Error(t, err)

	m := consumed(record("s", k, KindHead, "", now, "", nil, nil))
	for _, h := range m.Headers {
		if string(h.Key) == HeaderKind {
			h.Value = []byte("bogus")
		}
	}
	_, _, err = decode(m)
	assert.Error(t, err)
}
