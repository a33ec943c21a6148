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
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/middleware"
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
	assert.Equal(t, "corr-explicit-1", res.CorrelationID)
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

func TestProvisionTopics(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("prov")
	cfg.Retry.Partitions = 4
	cfg.Retry.Retention = 2 * time.Hour
	cfg.Retry.Segment = 30 * time.Minute
	cfg.DLQ.Partitions = 5
	cfg.DLQ.Retention = 48 * time.Hour
	topic := uniq("prov-in")
	env.createTopics(t, 1, topic)
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Prov.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	specs := rn.Stack.Topics()
	// Exponential 100ms, 200ms, 400ms: three lanes plus the DLQ.
	require.Len(t, specs, 4)
	assert.Equal(t, cfg.ServiceName+".retry.100ms", specs[0].Name)
	assert.Equal(t, cfg.ServiceName+".retry.200ms", specs[1].Name)
	assert.Equal(t, cfg.ServiceName+".retry.400ms", specs[2].Name)
	assert.Equal(t, cfg.ServiceName+".dlq", specs[3].Name)

	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	for _, sp := range specs {
		meta, err := admin.DescribeTopics([]string{sp.Name})
		require.NoError(t, err)
		require.Equal(t, sarama.ErrNoError, meta[0].Err, sp.Name)
		assert.Len(t, meta[0].Partitions, int(sp.Partitions), sp.Name)
		results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: sp.Name, ConfigNames: []string{"retention.ms", "segment.ms"}}}, sarama.DescribeConfigsOptions{})
		require.NoError(t, err)
		require.Len(t, results, 1)
		require.Equal(t, sarama.ErrNoError, results[0].ErrorCode, results[0].ErrorMsg)
		got := map[string]string{}
		for _, e := range results[0].Configs {
			got[e.Name] = e.Value
		}
		if sp.Name == cfg.ServiceName+".dlq" {
			assert.Equal(t, strconv.FormatInt((48*time.Hour).Milliseconds(), 10), got["retention.ms"])
		} else {
			assert.Equal(t, strconv.FormatInt((2*time.Hour).Milliseconds(), 10), got["retention.ms"], sp.Name)
			assert.Equal(t, strconv.FormatInt((30*time.Minute).Milliseconds(), 10), got["segment.ms"], sp.Name)
		}
	}
	// Provisioning again is a no-op on existing topics.
	require.NoError(t, rn.Stack.Provision(t.Context()))
}

func TestProvisionRefusedIsAClearError(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("refused")
	cfg.DLQ.ReplicationFactor = 3 // one broker
	cfg.Retry.Enabled = kafkaevents.Bool(false)
	s, err := kafkaevents.New(cfg, kafkaevents.WithLogger(nil))
	require.NoError(t, err)
	defer s.Close()
	err = s.Provision(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), cfg.ServiceName+".dlq")
	assert.Contains(t, err.Error(), "replication factor 3")
}

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
	reason, ok := middleware.ReasonOf(err)
	require.True(t, ok)
	assert.Equal(t, middleware.ReasonUndecodable, reason)
	require.NoError(t, h(message.NewMessage("2", []byte(`{"A":1}`))))
	_ = json.Valid
	_ = fmt.Sprint
}
