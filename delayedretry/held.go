package delayedretry

import (
	"time"

	"github.com/IBM/sarama"
)

// Held is a retry record that the Consumer holds until it is due.
type Held struct {
	Topic     string
	Partition int32
	Offset    int64
	Due       time.Time
}

// Held lists the records waiting for their due time, at most one per
// partition (the consumer reads a partition one record at a time, so the
// records behind a held one wait in the topic).
func (c *Consumer) Held() []Held {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	out := make([]Held, 0, len(c.held))
	for rec, due := range c.held {
		out = append(out, Held{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Due: due})
	}
	return out
}

func (c *Consumer) hold(rec *sarama.ConsumerMessage, due time.Time) {
	c.heldMu.Lock()
	if c.held == nil {
		c.held = map[*sarama.ConsumerMessage]time.Time{}
	}
	c.held[rec] = due
	c.heldMu.Unlock()
}

func (c *Consumer) unhold(rec *sarama.ConsumerMessage) {
	c.heldMu.Lock()
	delete(c.held, rec)
	c.heldMu.Unlock()
}
