package middleware

import (
	"context"

	"github.com/IBM/sarama"
)

// Sender publishes one record and returns once the broker acknowledged it
// (or with the error). On success rec.Partition and rec.Offset are set. The
// kafkaevents Producer implements it: it stamps the correlation ID, records a
// send span and injects the trace context.
type Sender interface {
	SendRecord(ctx context.Context, rec *sarama.ProducerMessage) error
}

// HeaderMap returns the headers of a consumed record as a map, the last value
// winning when a key repeats; nil entries are skipped.
func HeaderMap(hs []*sarama.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if h != nil {
			m[string(h.Key)] = string(h.Value)
		}
	}
	return m
}
