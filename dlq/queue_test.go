package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/wire"
)

type fakeSender struct {
	recs []*sarama.ProducerMessage
	err  error
}

func (f *fakeSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	if f.err != nil {
		return f.err
	}
	f.recs = append(f.recs, rec)
	return nil
}

func hdr(rec *sarama.ProducerMessage) map[string]string {
	m := map[string]string{}
	for _, h := range rec.Headers {
		m[string(h.Key)] = string(h.Value)
	}
	return m
}

func msgFor(retryCount int) *message.Message {
	msg := message.NewMessage("uuid-9", []byte("body"))
	msg.Metadata.Set("x-custom", "kept")
	msg.Metadata.Set(wire.HeaderCorrelationID, "corr-9")
	msg.SetContext(wire.WithDelivery(context.Background(), wire.Delivery{
		HandlerID: "H", Topic: "orders", Partition: 1, Offset: 7, HasOffset: true, Key: []byte("k"), RetryCount: retryCount,
	}))
	return msg
}

func TestMiddlewareStoresWithReason(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		err  error
		want wire.Reason
	}{
		{"exhausted", wire.WithReason(wire.ReasonRetriesExhausted, errors.New("e")), wire.ReasonRetriesExhausted},
		{"permanent", fmt.Errorf("wrapped: %w", wire.Permanent(errors.New("p"))), wire.ReasonPermanent},
		{"undecodable", wire.Undecodable(errors.New("u")), wire.ReasonUndecodable},
		{"no reason means retries are off", errors.New("plain"), wire.ReasonRetryDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSender{}
			q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq", Now: func() time.Time { return now }}, nil)
			require.NoError(t, err)
			var got wire.Outcome
			msg := msgFor(3)
			d := wire.DeliveryOf(msg)
			d.Report = func(o wire.Outcome) { got = o }
			msg.SetContext(wire.WithDelivery(msg.Context(), d))
			_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, tt.err })(msg)
			require.NoError(t, err)
			require.Len(t, s.recs, 1)
			h := hdr(s.recs[0])
			assert.Equal(t, string(tt.want), h[wire.HeaderDLQReason])
			assert.Equal(t, "svc.dlq", s.recs[0].Topic)
			assert.Equal(t, "kept", h["x-custom"])
			assert.Equal(t, "orders", h[wire.HeaderOriginalTopic])
			assert.Equal(t, "1", h[wire.HeaderOriginalPartition])
			assert.Equal(t, "7", h[wire.HeaderOriginalOffset])
			assert.Equal(t, "3", h[wire.HeaderRetryCount])
			assert.Equal(t, "H", h[wire.HeaderHandlerID])
			assert.Equal(t, "corr-9", h[wire.HeaderCorrelationID])
			assert.Equal(t, "uuid-9", h[wire.HeaderWatermillUUID])
			assert.Equal(t, "2026-05-06T07:08:09.000Z", h[wire.HeaderDLQStoredAt])
			assert.Equal(t, wire.OutcomeDeadLettered, got.Kind)
			assert.Equal(t, tt.want, got.Reason)
			assert.Equal(t, int64(1), q.Metrics().Stats().ByReason[string(tt.want)])
		})
	}
}

func TestMiddlewarePassesThroughWhatMustBeRedelivered(t *testing.T) {
	s := &fakeSender{}
	q, err := dlq.New(dlq.Config{Sender: s, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	handoff := fmt.Errorf("%w: retry record", wire.ErrHandoff)
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, handoff })(msgFor(0))
	require.ErrorIs(t, err, wire.ErrHandoff)

	msg := msgFor(0)
	msg.SetContext(wire.WithoutHandoff(msg.Context()))
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errors.New("x") })(msg)
	require.Error(t, err)
	assert.Empty(t, s.recs)

	s.err = errors.New("broker down")
	_, err = q.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errors.New("x") })(msgFor(0))
	require.ErrorIs(t, err, wire.ErrHandoff, "a failed DLQ publish is returned so Watermill redelivers")

	out, err := q.Middleware(func(m *message.Message) ([]*message.Message, error) { return []*message.Message{m}, nil })(msgFor(0))
	require.NoError(t, err)
	assert.Len(t, out, 1)
}

func TestStoreRejectsUnknownReason(t *testing.T) {
	q, err := dlq.New(dlq.Config{Sender: &fakeSender{}, Topic: "svc.dlq"}, nil)
	require.NoError(t, err)
	require.Error(t, q.Store(context.Background(), dlq.Record{Reason: "bogus"}))
	_, err = dlq.New(dlq.Config{}, nil)
	require.Error(t, err)
}
