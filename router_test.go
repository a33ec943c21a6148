package kafkaevents_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/wire"
)

func TestCorrelationFlowsIntoWhatHandlersPublish(t *testing.T) {
	env := newEnv(t)
	in, out := uniq("corr-in"), uniq("corr-out")
	env.createTopics(t, 1, in, out)
	rn := start(t, env.baseConfig("corr"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, in, "Corr.handle", func(msg *message.Message) error {
			_, err := s.Producer().Send(msg.Context(), kafkaevents.Message{Topic: out, Key: string(msg.Payload), Value: msg.Payload})
			return err
		})
		require.NoError(t, err)
	})
	p := rn.Stack.Producer()
	_, err := p.Send(t.Context(), kafkaevents.Message{Topic: in, Value: "a", Headers: map[string]string{correlation.Header: "corr-from-header"}})
	require.NoError(t, err)
	_, err = p.Send(t.Context(), kafkaevents.Message{Topic: in, Value: "b", Headers: map[string]string{correlation.WatermillMetadataKey: "corr-watermill"}})
	require.NoError(t, err)
	// A record without any correlation ID (raw sarama) gets a generated one.
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	_, _, err = raw.SendMessage(&sarama.ProducerMessage{Topic: in, Value: sarama.StringEncoder("c")})
	require.NoError(t, err)

	c := env.collect(t, out)
	recs := c.WaitFor(t, 3, 30*time.Second, nil)
	byKey := map[string]string{}
	for _, r := range recs {
		byKey[r.Key] = r.Headers[correlation.Header]
	}
	assert.Equal(t, "corr-from-header", byKey["a"])
	assert.Equal(t, "corr-watermill", byKey["b"])
	assert.Regexp(t, `^corr-[0-9a-z]{10}-\d{13}$`, byKey["c"])
}

func TestConsumerGroupResumesAfterRestart(t *testing.T) {
	env := newEnv(t)
	topic := uniq("resume")
	env.createTopics(t, 2, topic)
	cfg := env.baseConfig("resume")
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(msg *message.Message) error {
		mu.Lock()
		seen[string(msg.Payload)]++
		mu.Unlock()
		return nil
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	send := func(p *kafkaevents.Producer, from, to int) {
		var ms []kafkaevents.Message
		for i := from; i < to; i++ {
			ms = append(ms, kafkaevents.Message{Topic: topic, Key: strconv.Itoa(i), Value: "m" + strconv.Itoa(i)})
		}
		_, err := p.SendBatch(t.Context(), ms)
		require.NoError(t, err)
	}

	first := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Resume.handle", handler)
		require.NoError(t, err)
	})
	send(first.Stack.Producer(), 0, 20)
	require.Eventually(t, func() bool { return count() == 20 }, 30*time.Second, 20*time.Millisecond)
	first.Stop()

	second := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Resume.handle", handler)
		require.NoError(t, err)
	})
	send(second.Stack.Producer(), 20, 30)
	require.Eventually(t, func() bool { return count() == 30 }, 30*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // let any redelivery show up
	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		assert.Equal(t, 1, n, "message %s delivered %d times after a clean restart", k, n)
	}
}

func TestHandlerAddedDirectlyGetsTheStack(t *testing.T) {
	env := newEnv(t)
	topic := uniq("direct")
	env.createTopics(t, 1, topic)
	cfg := env.baseConfig("direct")
	var calls atomic.Int32
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		r.AddConsumerHandler("Direct.handle", topic, s.Subscriber(), func(msg *message.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("first delivery fails")
			}
			return nil
		})
	})
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
	require.NoError(t, err)
	// The failure is retried through the retry topic and the retry reaches
	// the directly added handler.
	require.Eventually(t, func() bool { return calls.Load() == 2 }, 30*time.Second, 20*time.Millisecond)
	ids := []string{}
	for _, h := range rn.Stack.Handlers() {
		ids = append(ids, h.ID)
	}
	assert.Contains(t, ids, "Direct.handle")
	st := rn.Stack.RetryStats()
	assert.Equal(t, int64(1), st.Handlers["Direct.handle"].Scheduled)
}

func TestJSONHandlerUndecodable(t *testing.T) {
	h := kafkaevents.JSON(func(ctx context.Context, v struct{ A int }) error { return nil })
	err := h(message.NewMessage("1", []byte("not json")))
	reason, ok := wire.ReasonOf(err)
	require.True(t, ok)
	assert.Equal(t, wire.ReasonUndecodable, reason)
	require.NoError(t, h(message.NewMessage("2", []byte(`{"A":1}`))))
	_ = json.Valid
	_ = fmt.Sprint
}
