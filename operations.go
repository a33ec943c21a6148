package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
)

// DLQTopic returns the DLQ topic name, {service}.dlq.
func (s *Stack) DLQTopic() string { return s.cfg.ServiceName + ".dlq" }

// RetryEnabled reports whether retries are on.
func (s *Stack) RetryEnabled() bool { return s.retrier != nil }

// DLQEnabled reports whether the DLQ is on.
func (s *Stack) DLQEnabled() bool { return s.queue != nil }

// RetryRunning reports whether the retry-topic consumer is consuming.
func (s *Stack) RetryRunning() bool {
	s.mu.Lock()
	c := s.retryConsumer
	s.mu.Unlock()
	return c != nil && c.Running()
}

// RetryTopics returns the retry topics (nil when retries are off).
func (s *Stack) RetryTopics() []string {
	if s.retrier == nil {
		return nil
	}
	return s.retrier.Topics()
}

// RetryStats returns the retry counters.
func (s *Stack) RetryStats() delayedretry.Stats { return s.retryStats.Stats() }

// DLQStats returns the DLQ counters.
func (s *Stack) DLQStats() dlq.Stats { return s.dlqStats.Stats() }

// Gatherer returns the registry that holds the stack's Prometheus metrics.
func (s *Stack) Gatherer() prometheus.Gatherer { return s.registry }

// ResetMetrics zeroes the counters of component: "all", "retry" or "dlq".
// Prometheus histograms are not reset (Prometheus counters only grow). It
// returns ErrUnknownComponent for anything else.
func (s *Stack) ResetMetrics(component string) error {
	switch component {
	case "all", "":
		s.retryStats.Reset()
		s.dlqStats.Reset()
	case "retry":
		s.retryStats.Reset()
	case "dlq":
		s.dlqStats.Reset()
	default:
		return fmt.Errorf("%w: %q", ErrUnknownComponent, component)
	}
	return nil
}

func (s *Stack) checkTopic(topic string) error {
	if s.reprocessor == nil {
		return ErrDLQDisabled
	}
	topics, someUnknown := s.topics()
	if topic == "" || (!someUnknown && !slices.Contains(topics, topic)) {
		return fmt.Errorf("%w: %q (handled topics: %v)", ErrUnknownTopic, topic, topics)
	}
	return nil
}

// StartReprocess starts reprocessing the DLQ records of opts.Topic in the
// background. It returns ErrDLQDisabled, ErrUnknownTopic,
// dlq.ErrAlreadyRunning or an error wrapping dlq.ErrInvalidOptions.
func (s *Stack) StartReprocess(opts dlq.ReprocessOptions) error {
	if err := s.checkTopic(opts.Topic); err != nil {
		return err
	}
	return s.reprocessor.Start(opts)
}

// StopReprocess stops the run of topic, or every run when topic is "", and
// returns how many it stopped.
func (s *Stack) StopReprocess(topic string) int {
	if s.reprocessor == nil {
		return 0
	}
	if topic == "" {
		return s.reprocessor.StopAll()
	}
	if s.reprocessor.Stop(topic) {
		return 1
	}
	return 0
}

// ReprocessActive reports whether any reprocessing run is in progress.
func (s *Stack) ReprocessActive() bool { return s.reprocessor != nil && s.reprocessor.Active("") }

// ReprocessStatus returns the runs in progress and the last result per topic.
func (s *Stack) ReprocessStatus() dlq.Status {
	if s.reprocessor == nil {
		return dlq.Status{Running: []dlq.Progress{}, Last: map[string]dlq.Progress{}}
	}
	return s.reprocessor.Status()
}

// BrowseDLQ lists the DLQ records of topic without committing anything; see
// dlq.Reprocessor.Browse.
func (s *Stack) BrowseDLQ(ctx context.Context, topic string, limit, offset int) (dlq.Page, error) {
	if err := s.checkTopic(topic); err != nil {
		return dlq.Page{}, err
	}
	return s.reprocessor.Browse(ctx, topic, limit, offset)
}

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

// call runs f in a goroutine and waits for it or ctx, so a sarama call
// without a context cannot hold a probe past its deadline.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := f()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Readiness checks that a broker answers a metadata request, that the router
// runs with handlers, and that the consumer group is stable with members,
// each bounded by ctx.
func (s *Stack) Readiness(ctx context.Context) Readiness {
	r := Readiness{Errors: map[string]string{}, CheckedAt: time.Now()}
	if _, err := call(ctx, func() (struct{}, error) { return struct{}{}, s.ping() }); err != nil {
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
	return r
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
	groups, err := call(ctx, func() ([]*sarama.GroupDescription, error) {
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
	return call(ctx, func() ([]PartitionLag, error) {
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
					l.Lag = max(end-b.Offset, 0)
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

// lagCollector exports Lag as gauges at scrape time.
type lagCollector struct{ s *Stack }

var lagDesc = prometheus.NewDesc("kafkaevents_consumer_lag", "Records between the consumer group's committed offset and the partition end.", []string{"topic", "partition"}, nil)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lags, err := c.s.Lag(ctx)
	if err != nil {
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Lag), l.Topic, fmt.Sprint(l.Partition))
	}
}
