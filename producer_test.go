package kafkaevents_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
)

func TestRoundTripKeysAndHeaders(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("roundtrip")
	topic := uniq("rt-in")
	env.createTopics(t, 3, topic)

	type seen struct {
		key, value, header, corr string
	}
	got := make(chan seen, 10)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "RoundTrip.handle", func(msg *message.Message) error {
			key, _ := kafka.MessageKeyFromCtx(msg.Context())
			got <- seen{string(key), string(msg.Payload), msg.Metadata.Get("x-custom"), correlation.FromContext(msg.Context())}
			return nil
		})
		require.NoError(t, err)
	})

	res, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{
		Topic: topic, Key: "order-1", Value: map[string]any{"orderId": "order-1"},
		Headers: map[string]string{"x-custom": "yes"}, CorrelationID: "corr-explicit-1",
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res.Offset, int64(0))

	select {
	case s := <-got:
		assert.Equal(t, "order-1", s.key)
		assert.JSONEq(t, `{"orderId":"order-1"}`, s.value)
		assert.Equal(t, "yes", s.header)
		assert.Equal(t, "corr-explicit-1", s.corr)
	case <-time.After(30 * time.Second):
		t.Fatal("message not consumed")
	}

	// Without one, Send generates a correlation ID, returns it and sends it:
	// the consumer sees the one the result names.
	res, err = rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "order-2", Value: "x"})
	require.NoError(t, err)
	require.NotEmpty(t, res.CorrelationID)
	select {
	case s := <-got:
		assert.Equal(t, "order-2", s.key)
		assert.Equal(t, res.CorrelationID, s.corr)
	case <-time.After(30 * time.Second):
		t.Fatal("second message not consumed")
	}
}

func TestSendBatchReturnsOffsets(t *testing.T) {
	env := newEnv(t)
	topic := uniq("batch")
	env.createTopics(t, 3, topic)
	rn := start(t, env.baseConfig("batch"), func(*kafkaevents.Stack, *message.Router) {})

	const n = 1000
	ms := make([]kafkaevents.Message, n)
	for i := range ms {
		ms[i] = kafkaevents.Message{Topic: topic, Key: "k" + strconv.Itoa(i%17), Value: []byte("v" + strconv.Itoa(i))}
	}
	res, err := rn.Stack.Producer().SendBatch(t.Context(), ms)
	require.NoError(t, err)
	require.Len(t, res, n)

	// Offsets are unique per partition, and every record reads back at the
	// partition and offset the batch reported.
	seen := map[[2]int64]int{}
	for i, r := range res {
		k := [2]int64{int64(r.Partition), r.Offset}
		_, dup := seen[k]
		require.False(t, dup, "duplicate partition/offset %v", k)
		seen[k] = i
		assert.NotEmpty(t, r.CorrelationID)
	}
	c := env.collect(t, topic)
	recs := c.WaitFor(t, n, 30*time.Second, nil)
	for _, rec := range recs {
		i, ok := seen[[2]int64{int64(rec.Partition), rec.Offset}]
		require.True(t, ok, "record at %d/%d not reported", rec.Partition, rec.Offset)
		assert.Equal(t, "v"+strconv.Itoa(i), rec.Value)
		assert.Equal(t, res[i].CorrelationID, rec.Headers[correlation.Header])
	}

	// An explicit partition wins over the key.
	p := int32(2)
	r, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Key: "k1", Value: "x", Partition: &p})
	require.NoError(t, err)
	assert.Equal(t, int32(2), r.Partition)
	p = 7
	_, err = rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x", Partition: &p})
	require.Error(t, err, "partition 7 of a 3-partition topic")
	_, err = rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Value: "x"})
	require.ErrorIs(t, err, kafkaevents.ErrInvalidMessage)
	_, err = rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: func() {}})
	require.ErrorIs(t, err, kafkaevents.ErrInvalidMessage)
}
