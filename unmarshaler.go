package kafkaevents

import (
	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents/wire"
)

// SafeUnmarshaler wraps a watermill-kafka Unmarshaler so that a record it
// rejects does not stop the consumer. watermill-kafka returns an unmarshal
// error from ConsumeClaim, which restarts the session and reads the same
// record again, forever. SafeUnmarshaler instead returns a message carrying
// the raw value and headers, marked with wire.HeaderUnmarshalError, which
// the stack's middlewares send to the DLQ with reason undecodable. The marker
// header is removed from incoming records, so a producer cannot set it.
type SafeUnmarshaler struct {
	// Unmarshaler does the work. Optional. Default: kafka.DefaultMarshaler.
	Unmarshaler kafka.Unmarshaler
}

// Unmarshal implements kafka.Unmarshaler. It never returns an error.
func (s SafeUnmarshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	u := s.Unmarshaler
	if u == nil {
		u = kafka.DefaultMarshaler{}
	}
	msg, err := u.Unmarshal(rec)
	if err == nil && msg != nil {
		delete(msg.Metadata, wire.HeaderUnmarshalError)
		return msg, nil
	}
	uuid := ""
	md := make(message.Metadata, len(rec.Headers)+1)
	for _, h := range rec.Headers {
		if h == nil {
			continue
		}
		if string(h.Key) == wire.HeaderWatermillUUID {
			uuid = string(h.Value)
			continue
		}
		md.Set(string(h.Key), string(h.Value))
	}
	if err == nil {
		err = errNilMessage
	}
	md.Set(wire.HeaderUnmarshalError, "unmarshal: "+err.Error())
	msg = message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg, nil
}

type unmarshalError string

func (e unmarshalError) Error() string { return string(e) }

const errNilMessage = unmarshalError("unmarshaler returned no message")
