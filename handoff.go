package kafkaevents

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// handoffMaxLinger caps the linger of the retry hand-off producer.
const handoffMaxLinger = 25 * time.Millisecond

// handoffLinger returns how long the producer of the retry records that are
// handed off lets them gather: a quarter of the shortest retry delay, at most
// 25ms, and never less than the stack's own linger. A retry record is due at
// least shortest after the failure; written within a quarter of that, and
// fetched within another quarter (retryFetch), it is read long before it is
// due, while the broker gets a produce request per 25ms instead of per 5ms.
func handoffLinger(shortest, linger time.Duration) time.Duration {
	return max(linger, min((shortest/4).Truncate(time.Millisecond), handoffMaxLinger))
}

// startHandoffProducer gives the retry records that are handed off a
// producer of their own, on a client of its own, when they may linger
// longer than the stack's producer does; s.mu is held.
func (s *Stack) startHandoffProducer(ctx context.Context, shortest time.Duration) error {
	linger := handoffLinger(shortest, s.cfg.Producer.Linger)
	if linger <= max(s.cfg.Producer.Linger, 0) || s.handoff.held.Load() != nil {
		return nil
	}
	sc, err := s.cfg.producerSarama()
	if err != nil {
		return err
	}
	sc.Producer.Flush.Frequency = linger
	client, err := s.connectClient(ctx, "connecting the retry producer", sc)
	if err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: retry producer client: %w", err))
	}
	p, err := newAsyncProducer(client, s.tracer)
	if err != nil {
		_ = client.Close()
		return err
	}
	s.handoffClient = client
	s.handoff.held.Store(p)
	return nil
}

// handoffSender is the retry middleware's Sender. The retry records it
// hands off while their original's offset is held go through a producer
// that lingers longer (startHandoffProducer), once the retry consumer runs;
// the records the middleware waits for go through the stack's producer,
// which answers sooner.
type handoffSender struct {
	*Producer
	held atomic.Pointer[Producer]
}

// SendRecordAsync implements wire.AsyncSender.
func (h *handoffSender) SendRecordAsync(ctx context.Context, rec *sarama.ProducerMessage, done func(error)) {
	if p := h.held.Load(); p != nil {
		p.SendRecordAsync(ctx, rec, done)
		return
	}
	h.Producer.SendRecordAsync(ctx, rec, done)
}
