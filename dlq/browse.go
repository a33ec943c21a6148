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

// BrowserConfig configures a Browser.
type BrowserConfig struct {
	// Client reads the DLQ and the committed offsets of the reprocess
	// groups. Required. The Browser never closes it.
	Client sarama.Client
	// Topic is the DLQ topic, conventionally {service}.dlq. Required.
	Topic string
	// GroupPrefix names the consumer group of each original topic's
	// reprocess runs, {GroupPrefix}.{topic}, whose committed offsets
	// Query.Pending reads. Optional. Default: {Topic}.reprocess, the
	// default of ReprocessorConfig.GroupPrefix.
	GroupPrefix string
}

// Browser reads the DLQ without changing it: it lists records (Browse,
// Search) and reads one in full (Detail). It commits no consumer group
// offset and starts no goroutine, so it has nothing to close; it is safe
// for concurrent use.
type Browser struct {
	cfg BrowserConfig
}

// NewBrowser returns a Browser, or an error naming a missing field.
func NewBrowser(cfg BrowserConfig) (*Browser, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("dlq: BrowserConfig.Client is required"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("dlq: BrowserConfig.Topic is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.GroupPrefix == "" {
		cfg.GroupPrefix = defaultGroupPrefix(cfg.Topic)
	}
	return &Browser{cfg: cfg}, nil
}

// defaultGroupPrefix is the default GroupPrefix of the reprocess groups of
// the DLQ topic dlqTopic.
func defaultGroupPrefix(dlqTopic string) string { return dlqTopic + ".reprocess" }

// groupID is the consumer group of topic's reprocess runs.
func groupID(prefix, topic string) string { return prefix + "." + topic }

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

// ErrInvalidBrowse is returned by Browse and Search for a bad argument.
var ErrInvalidBrowse = errors.New("dlq: invalid browse request")

// Browse lists the DLQ records whose original topic is topic, in partition
// and offset order, skipping the first offset matches and returning at most
// limit (1..MaxBrowseLimit). It reads the DLQ up to its end at the time of the
// call and commits no consumer group offset. Total counts every match.
func (b *Browser) Browse(ctx context.Context, topic string, limit, offset int) (Page, error) {
	if topic == "" || limit < 1 || limit > MaxBrowseLimit || offset < 0 {
		return Page{}, fmt.Errorf("%w: topic %q, limit %d (want 1..%d), offset %d (want >= 0)", ErrInvalidBrowse, topic, limit, MaxBrowseLimit, offset)
	}
	return b.list(ctx, Query{Topic: topic, Limit: limit, Offset: offset})
}

// Query selects DLQ records for Search. Empty fields match everything.
type Query struct {
	// Topic, Reason and HandlerID match the x-original-topic, x-dlq-reason
	// and x-handler-id headers exactly.
	Topic     string `json:"topic"`
	Reason    string `json:"reason"`
	HandlerID string `json:"handlerId"`
	// Pending keeps only the records the next run of Topic would read: those
	// from the position its consumer group committed on, or every record
	// still in the partition when that offset lies outside the log (see
	// Reprocessor). It needs Topic.
	Pending bool `json:"pending"`
	// Limit (1..MaxBrowseLimit) and Offset (>= 0) page through the matches.
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

// Search lists the DLQ records that match q, in partition and offset
// order, like Browse. Page.Topic is q.Topic.
func (b *Browser) Search(ctx context.Context, q Query) (Page, error) {
	if q.Limit < 1 || q.Limit > MaxBrowseLimit || q.Offset < 0 || (q.Pending && q.Topic == "") {
		return Page{}, fmt.Errorf("%w: limit %d (want 1..%d), offset %d (want >= 0), pending %t with topic %q (pending needs a topic)",
			ErrInvalidBrowse, q.Limit, MaxBrowseLimit, q.Offset, q.Pending, q.Topic)
	}
	return b.list(ctx, q)
}

// list returns the page of the records that match q, which is valid.
func (b *Browser) list(ctx context.Context, q Query) (Page, error) {
	dlqTopic := b.cfg.Topic
	parts, err := b.cfg.Client.Partitions(dlqTopic)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: partitions of %s: %w", dlqTopic, err)
	}
	var committed map[int32]int64
	if q.Pending {
		if committed, err = (groupCommits{client: b.cfg.Client, group: groupID(b.cfg.GroupPrefix, q.Topic)}).fetch(dlqTopic, parts); err != nil {
			return Page{}, err
		}
	}
	consumer, err := sarama.NewConsumerFromClient(b.cfg.Client)
	if err != nil {
		return Page{}, fmt.Errorf("dlq: consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()

	page := Page{Topic: q.Topic, Offset: q.Offset, Limit: q.Limit, Records: []BrowsedRecord{}}
	for _, p := range parts {
		from, end, err := bounds(b.cfg.Client, dlqTopic, p)
		if err != nil {
			return Page{}, err
		}
		if q.Pending {
			from, _ = startOffset(committed[p], from, end)
		}
		err = scanPartition(ctx, b.cfg.Client, consumer, dlqTopic, p, from, end, func(m *sarama.ConsumerMessage) error {
			hdr := wire.HeaderMap(m.Headers)
			if !q.matches(hdr) {
				return nil
			}
			page.Total++
			if page.Total <= q.Offset || len(page.Records) >= q.Limit {
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

func (q Query) matches(hdr map[string]string) bool {
	return (q.Topic == "" || hdr[wire.HeaderOriginalTopic] == q.Topic) &&
		(q.Reason == "" || hdr[wire.HeaderDLQReason] == q.Reason) &&
		(q.HandlerID == "" || hdr[wire.HeaderHandlerID] == q.HandlerID)
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
