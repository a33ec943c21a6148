package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/wire"
)

// MaxPreview bounds BrowsedRecord.Preview, in bytes.
const MaxPreview = 1024

// MaxBrowseLimit bounds Browse's limit.
const MaxBrowseLimit = 500

// BrowsedRecord is one DLQ record as Browse shows it.
type BrowsedRecord struct {
	Partition      int32             `json:"partition"`
	Offset         int64             `json:"offset"`
	Timestamp      time.Time         `json:"timestamp"`
	Key            string            `json:"key,omitempty"`
	Headers        map[string]string `json:"headers"`
	Reason         string            `json:"reason"`
	HandlerID      string            `json:"handlerId"`
	ErrorMessage   string            `json:"errorMessage"`
	ReprocessCount int               `json:"reprocessCount"`
	// Preview is the start of the payload, at most MaxPreview bytes, cut on
	// a UTF-8 boundary; Truncated says whether it was cut.
	Preview     string `json:"preview"`
	PayloadSize int    `json:"payloadSize"`
	Truncated   bool   `json:"truncated"`
}

// Page is one page of Browse.
type Page struct {
	Topic   string          `json:"topic"`
	Offset  int             `json:"offset"`
	Limit   int             `json:"limit"`
	Total   int             `json:"total"`
	Records []BrowsedRecord `json:"records"`
}

// ErrInvalidBrowse is returned by Browse for a bad argument.
var ErrInvalidBrowse = errors.New("dlq: invalid browse request")

// Browse lists the DLQ records whose original topic is topic, in partition
// and offset order, skipping the first offset matches and returning at most
// limit (1..MaxBrowseLimit). It reads the DLQ up to its end at the time of the
// call and commits no consumer group offset. Total counts every match.
func (r *Reprocessor) Browse(ctx context.Context, topic string, limit, offset int) (Page, error) {
	if topic == "" || limit < 1 || limit > MaxBrowseLimit || offset < 0 {
		return Page{}, fmt.Errorf("%w: topic %q, limit %d (want 1..%d), offset %d (want >= 0)", ErrInvalidBrowse, topic, limit, MaxBrowseLimit, offset)
	}
	dlqTopic := r.cfg.Queue.Topic()
	parts, err := r.cfg.Client.Partitions(dlqTopic)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: partitions of %s: %w", dlqTopic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(r.cfg.Client)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()

	page := Page{Topic: topic, Offset: offset, Limit: limit, Records: []BrowsedRecord{}}
	for _, p := range parts {
		oldest, end, err := bounds(r.cfg.Client, dlqTopic, p)
		if err != nil {
			return Page{}, err
		}
		err = scanPartition(ctx, consumer, dlqTopic, p, oldest, end, func(m *sarama.ConsumerMessage) error {
			hdr := wire.HeaderMap(m.Headers)
			if hdr[wire.HeaderOriginalTopic] != topic {
				return nil
			}
			page.Total++
			if page.Total <= offset || len(page.Records) >= limit {
				return nil
			}
			page.Records = append(page.Records, browsed(m, hdr))
			return nil
		})
		if err != nil {
			return Page{}, err
		}
	}
	return page, nil
}

// UnknownReason is the Reason Browse shows for a record whose x-dlq-reason
// is not one the stack writes (someone else wrote the record); the header
// itself stays in Headers.
const UnknownReason = "unknown"

func browsedReason(h string) string {
	if wire.Reason(h).Valid() {
		return h
	}
	return UnknownReason
}

func browsed(m *sarama.ConsumerMessage, hdr map[string]string) BrowsedRecord {
	b := BrowsedRecord{
		Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp, Key: string(m.Key), Headers: hdr,
		Reason: browsedReason(hdr[wire.HeaderDLQReason]), HandlerID: hdr[wire.HeaderHandlerID],
		ErrorMessage: hdr[wire.HeaderErrorMessage], PayloadSize: len(m.Value),
	}
	b.ReprocessCount = reprocessCount(hdr)
	v := m.Value
	if len(v) > MaxPreview {
		cut := MaxPreview
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v, b.Truncated = v[:cut], true
	}
	b.Preview = string(v)
	return b
}
