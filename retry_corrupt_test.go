package kafkaevents_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// TestFarFutureRetryRecordDoesNotBlockItsPartition writes a retry record due
// in the year 9999 and, on the same partition right behind it, a valid one.
// The far one is dead-lettered as unroutable (no retry the library writes is
// due later than the retry topics' retention) instead of holding the
// partition for ever, and the valid one is delivered.
func TestFarFutureRetryRecordDoesNotBlockItsPartition(t *testing.T) {
	env := newEnv(t)
	topic := uniq("farfuture")
	env.createTopics(t, 1, topic)
	delivered := make(chan string, 4)
	rn := start(t, env.baseConfig("farfuture"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "FarFuture.handle", func(msg *message.Message) error {
			delivered <- string(msg.Payload)
			return nil
		})
		require.NoError(t, err)
	})
	c := env.collect(t, rn.Stack.DLQTopic())
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	send := func(value, due string) {
		_, _, err := raw.SendMessage(&sarama.ProducerMessage{
			Topic: rn.Stack.RetryTopics()[0], Key: sarama.StringEncoder("same-key"), Value: sarama.StringEncoder(value),
			Headers: []sarama.RecordHeader{
				{Key: []byte(wire.HeaderHandlerID), Value: []byte("FarFuture.handle")},
				{Key: []byte(wire.HeaderOriginalTopic), Value: []byte(topic)},
				{Key: []byte(wire.HeaderRetryCount), Value: []byte("1")},
				{Key: []byte(wire.HeaderRetryAfter), Value: []byte(due)},
			},
		})
		require.NoError(t, err)
	}
	send("year 9999", "9999-12-31T23:59:59.999Z")
	send("due now", time.Now().UTC().Format(wire.TimeFormat))

	select {
	case v := <-delivered:
		assert.Equal(t, "due now", v)
	case <-time.After(30 * time.Second):
		t.Fatal("the valid retry record behind the far-future one was not delivered")
	}
	r := c.WaitFor(t, 1, 30*time.Second, nil)[0]
	assert.Equal(t, "year 9999", r.Value)
	assert.Equal(t, string(wire.ReasonUnroutable), r.Headers[wire.HeaderDLQReason])
	assert.Contains(t, r.Headers[wire.HeaderErrorMessage], "ahead")
	assert.Empty(t, delivered, "the far-future record reached the handler")
}
