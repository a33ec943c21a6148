package dlq_test

import (
	"context"
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/embedded"
	"github.com/torix/kafkaevents/wire"
)

// syncSender publishes through a sarama SyncProducer.
type syncSender struct{ p sarama.SyncProducer }

func (s syncSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	_, _, err := s.p.SendMessage(rec)
	return err
}

// TestBrowser stores DLQ records with a Queue and reads them back with a
// Browser of its own, which needs nothing but the client and the DLQ topic.
func TestBrowser(t *testing.T) {
	const dlqTopic = "svc.dlq"
	broker := embedded.New(t, embedded.Partitions(1), embedded.Topics(dlqTopic))
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	client, err := sarama.NewClient(broker.Addrs(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	producer, err := sarama.NewSyncProducerFromClient(client)
	require.NoError(t, err)
	t.Cleanup(func() { _ = producer.Close() })

	q, err := dlq.New(dlq.Config{Sender: syncSender{producer}, Topic: dlqTopic}, nil)
	require.NoError(t, err)
	for _, rec := range []dlq.Record{
		{Topic: "orders", HandlerID: "Orders.create", Reason: wire.ReasonRetriesExhausted, Err: errors.New("db down"), Value: []byte("o-1")},
		{Topic: "payments", HandlerID: "Payments.charge", Reason: wire.ReasonPermanent, Err: errors.New("bad card"), Value: []byte("p-1")},
		{Topic: "orders", HandlerID: "Orders.create", Reason: wire.ReasonPermanent, Err: errors.New("bad order"), Value: []byte("o-2")},
	} {
		require.NoError(t, q.Store(t.Context(), rec))
	}

	b, err := dlq.NewBrowser(dlq.BrowserConfig{Client: client, Topic: dlqTopic})
	require.NoError(t, err)

	page, err := b.Browse(t.Context(), "orders", 10, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, page.Total)
	require.Len(t, page.Records, 2)
	assert.Equal(t, "o-1", page.Records[0].Preview)
	assert.Equal(t, "o-2", page.Records[1].Preview)

	page, err = b.Search(t.Context(), dlq.Query{Topic: "orders", Reason: string(wire.ReasonPermanent), Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	assert.Equal(t, "bad order", page.Records[0].ErrorMessage)

	page, err = b.Search(t.Context(), dlq.Query{Topic: "orders", Pending: true, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, 2, page.Total, "no run committed anything: every record of the topic is pending")

	d, err := b.Detail(t.Context(), page.Records[1].Partition, page.Records[1].Offset)
	require.NoError(t, err)
	assert.Equal(t, "orders", d.OriginalTopic)
	assert.Equal(t, "o-2", string(d.Payload))

	_, err = b.Detail(t.Context(), 0, 99)
	require.ErrorIs(t, err, dlq.ErrRecordNotFound)
	_, err = b.Browse(t.Context(), "", 10, 0)
	require.ErrorIs(t, err, dlq.ErrInvalidBrowse)
}

func TestNewBrowserNamesMissingFields(t *testing.T) {
	_, err := dlq.NewBrowser(dlq.BrowserConfig{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "BrowserConfig.Client is required")
	assert.ErrorContains(t, err, "BrowserConfig.Topic is required")
}
