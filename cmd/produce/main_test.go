package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/kafkatest"
)

// TestProduceSendsRecords sends one record from the argument and two from
// standard input to the embedded broker, with a key and headers, and reads
// them back.
func TestProduceSendsRecords(t *testing.T) {
	b := kafkatest.New(t, kafkatest.Partitions(1), kafkatest.Topics("orders"))
	brokers := strings.Join(b.Addrs(), ",")
	var out, errOut bytes.Buffer
	code := run([]string{"-brokers", brokers, "-topic", "orders", "-key", "o-1", "-header", "x-source=cli", `{"orderId":"o-1"}`}, nil, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	code = run([]string{"-brokers", brokers, "-topic", "orders"}, strings.NewReader("a\n\nb\n"), &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	assert.Equal(t, "orders/0@0\norders/0@1\norders/0@2\n", out.String())

	c, err := sarama.NewConsumer(b.Addrs(), sarama.NewConfig())
	require.NoError(t, err)
	defer c.Close()
	pc, err := c.ConsumePartition("orders", 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	for len(got) < 3 {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d of 3 records", len(got))
		}
	}
	assert.Equal(t, "o-1", string(got[0].Key))
	assert.Equal(t, `{"orderId":"o-1"}`, string(got[0].Value))
	require.Len(t, got[0].Headers, 1)
	assert.Equal(t, "x-source", string(got[0].Headers[0].Key))
	assert.Equal(t, "cli", string(got[0].Headers[0].Value))
	assert.Equal(t, "a", string(got[1].Value))
	assert.Nil(t, got[1].Key)
	assert.Equal(t, "b", string(got[2].Value))
}

// TestProduceRefusesBadFlags: no topic, or a header without "=", exits 2
// with a message.
func TestProduceRefusesBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"value"}, nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "-topic is required")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"-topic", "t", "-header", "novalue"}, nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "want key=value")
}
