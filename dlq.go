package kafkaevents

import (
	"context"
	"fmt"
	"slices"

	"github.com/torix/kafkaevents/dlq"
)

// DLQTopic returns the DLQ topic name, {service}.dlq.
func (s *Stack) DLQTopic() string { return s.cfg.ServiceName + ".dlq" }

// DLQRunsTopic returns the topic of the DLQ reprocess runs,
// {service}.dlq.runs: every instance reads it, so that a topic has one run
// at a time across instances and each shows the runs of all (see
// dlq.RunLog).
func (s *Stack) DLQRunsTopic() string { return s.DLQTopic() + ".runs" }

// DLQEnabled reports whether the DLQ is on.
func (s *Stack) DLQEnabled() bool { return s.queue != nil }

// DLQStats returns the DLQ counters.
func (s *Stack) DLQStats() dlq.Stats { return s.dlqStats.Stats() }

// checkTopic returns the error of a DLQ operation on topic: ErrDLQDisabled,
// or ErrUnknownTopic when no registered handler consumes it.
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
// dlq.Browser.Browse.
func (s *Stack) BrowseDLQ(ctx context.Context, topic string, limit, offset int) (dlq.Page, error) {
	if err := s.checkTopic(topic); err != nil {
		return dlq.Page{}, err
	}
	return s.browser.Browse(ctx, topic, limit, offset)
}

// SearchDLQ lists the DLQ records that match q without committing anything;
// see dlq.Browser.Search. A non-empty q.Topic must be a handled topic.
func (s *Stack) SearchDLQ(ctx context.Context, q dlq.Query) (dlq.Page, error) {
	if s.browser == nil {
		return dlq.Page{}, ErrDLQDisabled
	}
	if q.Topic != "" {
		if err := s.checkTopic(q.Topic); err != nil {
			return dlq.Page{}, err
		}
	}
	return s.browser.Search(ctx, q)
}

// DLQRecord reads one DLQ record in full; see dlq.Browser.Detail. It
// returns ErrDLQDisabled or an error wrapping dlq.ErrRecordNotFound.
func (s *Stack) DLQRecord(ctx context.Context, partition int32, offset int64) (dlq.Detail, error) {
	if s.browser == nil {
		return dlq.Detail{}, ErrDLQDisabled
	}
	return s.browser.Detail(ctx, partition, offset)
}

// ReprocessRecord hands the one DLQ record at partition and offset to its
// handler, the way a run of its topic would; see
// dlq.Reprocessor.ReprocessRecord. It returns ErrDLQDisabled or the
// Reprocessor's error.
func (s *Stack) ReprocessRecord(ctx context.Context, partition int32, offset int64) (dlq.RecordResult, error) {
	if s.reprocessor == nil {
		return dlq.RecordResult{}, ErrDLQDisabled
	}
	return s.reprocessor.ReprocessRecord(ctx, partition, offset)
}

// startDLQRuns starts reading the runs topic, when the DLQ is on; the
// router plugin calls it after Provision.
func (s *Stack) startDLQRuns(ctx context.Context) error {
	if s.runs == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs.Started() || s.closed {
		return nil
	}
	sc, err := s.cfg.stackSarama()
	if err != nil {
		return err
	}
	client, err := s.connectClient(ctx, "connecting the DLQ runs reader", sc)
	if err != nil {
		return s.cfg.redactErr(fmt.Errorf("kafkaevents: DLQ runs reader client: %w", err))
	}
	if err := s.runs.Start(client); err != nil {
		_ = client.Close()
		return fmt.Errorf("kafkaevents: DLQ runs: %w", err)
	}
	s.runsClient = client
	// The runs of other instances, and the last ones, are known before the
	// first status is asked for.
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	if err := s.runs.Sync(sctx); err != nil {
		return fmt.Errorf("kafkaevents: reading %s: %w", s.DLQRunsTopic(), err)
	}
	return nil
}
