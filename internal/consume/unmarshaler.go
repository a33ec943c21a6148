package consume

import (
	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/internal/offsets"
	"github.com/torix/kafkaevents/wire"
)

// HandOutUnmarshaler is the unmarshaler of the stack's subscriber: it tells
// Marks which offset of its partition watermill-kafka is about to hand out
// (watermill-kafka unmarshals a record right before it hands it out, and
// hands out the next one of the partition only after this one was
// acknowledged), and unmarshals the record with Unmarshaler.
type HandOutUnmarshaler struct {
	kafka.Unmarshaler
	Marks *offsets.Tracker
}

// Unmarshal implements kafka.Unmarshaler.
func (u HandOutUnmarshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	msg, err := u.Unmarshaler.Unmarshal(rec)
	if err != nil {
		return nil, err
	}
	u.Marks.HandOut(offsets.Partition{Topic: rec.Topic, Partition: rec.Partition}, rec.Offset, msg)
	return msg, nil
}

// OffsetHolder is the stack's wire.OffsetHolder: it holds the offset
// of a message of a Subscriber on Marks in the offset tracker, so that the
// retry and DLQ hand-offs can acknowledge a message before its record is
// acknowledged by the broker.
type OffsetHolder struct{ Marks *offsets.Tracker }

// Hold implements wire.OffsetHolder. A message that did not come from a
// Subscriber on Marks is held where its context says it was read
// (offsets.HoldAt: a retry record dispatched by the retry consumer, when its
// hand-offs are transactional); otherwise Hold returns nil.
func (h OffsetHolder) Hold(msg *message.Message) wire.OffsetHold {
	sub, ok := msg.Context().Value(subscriptionKey{}).(*subscription)
	if !ok {
		return offsets.HoldAt(msg.Context())
	}
	if sub.marks != h.Marks {
		return nil
	}
	tp, off, ok := sub.position(msg)
	if !ok {
		return nil
	}
	return h.Marks.Hold(tp, off)
}
