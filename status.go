package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/torix/kafkaevents/internal/bounded"
	"github.com/torix/kafkaevents/internal/txn"
)

// ProducerConnected reports whether the client is open and knows at least
// one broker.
func (s *Stack) ProducerConnected() bool {
	return !s.client.Closed() && len(s.client.Brokers()) > 0
}

// RouterRunning reports whether a router the stack is installed on runs.
func (s *Stack) RouterRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.routers {
		if r.IsRunning() && !r.IsClosed() {
			return true
		}
	}
	return false
}

// Readiness checks that a broker answers a metadata request, that the router
// runs with handlers, and that the consumer group is stable with members,
// each bounded by ctx.
func (s *Stack) Readiness(ctx context.Context) Readiness {
	r := Readiness{Errors: map[string]string{}, CheckedAt: time.Now()}
	if _, err := bounded.Call(ctx, func(context.Context) (struct{}, error) { return struct{}{}, s.ping() }); err != nil {
		r.Errors["producer"] = err.Error()
	} else {
		r.Producer = true
	}
	s.mu.Lock()
	n := len(s.handlers)
	s.mu.Unlock()
	switch {
	case !s.RouterRunning():
		r.Errors["handlers"] = "router is not running"
	case n == 0:
		r.Errors["handlers"] = "no handler registered"
	default:
		r.Handlers = true
	}
	if r.Producer {
		if err := s.groupAssigned(ctx); err != nil {
			r.Errors["consumer"] = err.Error()
		} else {
			r.Consumer = true
		}
	} else {
		r.Errors["consumer"] = "broker unreachable"
	}
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	r.Warnings = s.keyOrderWarnings(s.subscriber.Stuck(StuckAfter))
	if w := s.retryWaiting(ctx); w != "" {
		if r.Warnings == nil {
			r.Warnings = map[string]string{}
		}
		r.Warnings["retry consumer"] = w
	}
	return r
}

// RetryWaitingAfter is how long the retry consumer may wait to join its
// group's next session before readiness reports it (in
// Readiness.Warnings): while it waits, no retry is delivered. A join takes
// a few seconds (Kafka holds a new group's first rebalance 3 s by default);
// a member killed without leaving holds the group's rebalance until its
// session timeout unless it comes back with the same static instance ID.
const RetryWaitingAfter = 5 * time.Second

// retryWaiting returns the readiness warning of a retry consumer waiting to
// join its group for longer than RetryWaitingAfter, naming the group's
// state when the broker says it within ctx, or "".
func (s *Stack) retryWaiting(ctx context.Context) string {
	s.mu.Lock()
	c := s.retryConsumer
	s.mu.Unlock()
	if c == nil {
		return ""
	}
	d, ok := c.Waiting()
	if !ok || d < RetryWaitingAfter {
		return ""
	}
	group := c.GroupID()
	w := fmt.Sprintf("retry consumer group %s has given this member no partitions for %s: retries are not delivered", group, d.Round(time.Second))
	groups, err := bounded.Call(ctx, func(context.Context) ([]*sarama.GroupDescription, error) {
		return s.admin.DescribeConsumerGroups([]string{group})
	})
	if err == nil && len(groups) == 1 && groups[0].Err == sarama.ErrNoError {
		w += fmt.Sprintf(" (group %s, %d members)", groups[0].State, len(groups[0].Members))
	}
	return w
}

// ping asks a broker for cluster metadata over a fresh request.
func (s *Stack) ping() error {
	b := s.client.LeastLoadedBroker()
	if b == nil {
		return sarama.ErrOutOfBrokers
	}
	if ok, _ := b.Connected(); !ok {
		if err := b.Open(s.saramaCfg); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return err
		}
	}
	_, err := b.GetMetadata(&sarama.MetadataRequest{Version: 1})
	if err != nil {
		_ = b.Close()
	}
	return err
}

func (s *Stack) groupAssigned(ctx context.Context) error {
	groups, err := bounded.Call(ctx, func(context.Context) ([]*sarama.GroupDescription, error) {
		return s.admin.DescribeConsumerGroups([]string{s.cfg.Consumer.GroupID})
	})
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return errors.New("consumer group not found")
	}
	g := groups[0]
	if g.Err != sarama.ErrNoError {
		return g.Err
	}
	if g.State != "Stable" {
		return fmt.Errorf("consumer group %s is %s", g.GroupId, g.State)
	}
	if len(g.Members) == 0 {
		return fmt.Errorf("consumer group %s has no members", g.GroupId)
	}
	return nil
}

// Lag returns the consumer group's lag on every partition of the handled
// topics.
func (s *Stack) Lag(ctx context.Context) ([]PartitionLag, error) {
	topics, _ := s.topics()
	if len(topics) == 0 {
		return []PartitionLag{}, nil
	}
	return bounded.Call(ctx, func(context.Context) ([]PartitionLag, error) {
		resp, err := s.admin.ListConsumerGroupOffsets(s.cfg.Consumer.GroupID, nil)
		if err != nil {
			return nil, err
		}
		out := []PartitionLag{}
		for _, t := range topics {
			parts, err := s.client.Partitions(t)
			if err != nil {
				return nil, fmt.Errorf("partitions of %s: %w", t, err)
			}
			for _, p := range parts {
				end, err := s.client.GetOffset(t, p, sarama.OffsetNewest)
				if err != nil {
					return nil, fmt.Errorf("end offset of %s/%d: %w", t, p, err)
				}
				l := PartitionLag{Topic: t, Partition: p, Committed: -1, End: end}
				if b := resp.GetBlock(t, p); b != nil && b.Offset >= 0 {
					l.Committed = b.Offset
					l.Lag = s.deliverableLag(t, p, b.Offset, end)
				} else {
					oldest, err := s.client.GetOffset(t, p, sarama.OffsetOldest)
					if err != nil {
						return nil, fmt.Errorf("oldest offset of %s/%d: %w", t, p, err)
					}
					l.Lag = end - oldest
				}
				out = append(out, l)
			}
		}
		return out, nil
	})
}

// tailProbeMax is the largest lag that deliverableLag counts record by
// record.
const tailProbeMax = 64

// deliverableLag returns the lag of a partition whose committed offset is
// from: end minus from, or, when that is at most tailProbeMax, the records in
// between that a consumer delivers. Transactions leave offsets no consumer
// delivers (a marker after each, the records of an aborted one), and a group
// that commits past each record it handles never commits past the marker
// that follows the last one: counted as offsets, an idle partition would
// keep a lag of 1.
func (s *Stack) deliverableLag(topic string, partition int32, from, end int64) int64 {
	lag := max(end-from, 0)
	if lag == 0 || lag > tailProbeMax {
		return lag
	}
	n, open, err := txn.CountDeliverable(s.client, topic, partition, from, end, lag)
	if err != nil || open {
		return lag
	}
	return n
}

// PartitionLag is the consumer lag of one partition of a consumed topic.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset (-1 when none).
	Committed int64 `json:"committed"`
	// End is the partition's end offset (high-water mark).
	End int64 `json:"end"`
	// Lag is End minus Committed (End minus the oldest offset when nothing
	// is committed); when that is 64 or less, the records in between a
	// consumer delivers (transaction markers are not).
	Lag int64 `json:"lag"`
}

// Readiness is the outcome of the readiness checks.
type Readiness struct {
	// Producer: a broker answered a metadata request in time.
	Producer bool `json:"producer"`
	// Handlers: the router is running with at least one handler.
	Handlers bool `json:"handlers"`
	// Consumer: the consumer group is stable and has members with
	// assignments.
	Consumer bool `json:"consumer"`
	// Errors explains the failed checks.
	Errors map[string]string `json:"errors,omitempty"`
	// Warnings reports what does not fail a check but needs a look: a
	// record that has been in its handler for longer than StuckAfter (key
	// "handler {id}"), or a retry consumer waiting for longer than
	// RetryWaitingAfter to join its group (key "retry consumer").
	Warnings map[string]string `json:"warnings,omitempty"`
	// CheckedAt is when the checks ran.
	CheckedAt time.Time `json:"-"`
}

// Ready reports whether every check passed.
func (r Readiness) Ready() bool { return r.Producer && r.Handlers && r.Consumer }
