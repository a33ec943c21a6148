package dlq_test

import (
	"context"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/offsets"
)

// flushCommits is a dlq.TransactionalCommits that commits a run's positions,
// with their metadata, when the run flushes them: what the run reports,
// without the transactions.
type flushCommits struct {
	admin     sarama.ClusterAdmin
	mu        sync.Mutex
	group     string
	topic     string
	positions func() []dlq.RunPosition
}

func (f *flushCommits) Track(group, topic string, positions func() []dlq.RunPosition) func() {
	f.mu.Lock()
	f.group, f.topic, f.positions = group, topic, positions
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.positions = nil
		f.mu.Unlock()
	}
}

func (f *flushCommits) Flush(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.positions == nil {
		return nil
	}
	parts := map[int32]sarama.OffsetAndMetadata{}
	for _, p := range f.positions() {
		parts[p.Partition] = sarama.OffsetAndMetadata{Offset: p.Offset, Metadata: p.Metadata, LeaderEpoch: -1}
	}
	_, err := f.admin.AlterConsumerGroupOffsets(f.group, map[string]map[int32]sarama.OffsetAndMetadata{f.topic: parts}, nil)
	return err
}

func (f *flushCommits) Forget(string) {}

// TestReprocessResumesPastWhatItsCommitNamesDone: with transactional
// commits, a run resumes at the committed position and skips the records
// the commit metadata names as done (a run killed after their hand-offs
// committed, before its position passed them), unless the committed offset
// is outside the log: its metadata then names offsets of another log.
func TestReprocessResumesPastWhatItsCommitNamesDone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed int64
		metadata  string
		handled   []string
	}{
		{name: "records 2 and 3 done past 1", committed: 1, metadata: offsets.EncodeMetadata(1, 4, []int64{1}), handled: []string{"v-1", "v-4"}},
		{name: "no metadata", committed: 1, handled: []string{"v-1", "v-2", "v-3", "v-4"}},
		{name: "past the end", committed: 10, metadata: offsets.EncodeMetadata(2, 12, nil), handled: values("v", 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newReprocessEnv(t)
			env.store(t, values("v", 5)...)
			resp, err := env.admin.AlterConsumerGroupOffsets(reprocessGroup, map[string]map[int32]sarama.OffsetAndMetadata{
				reprocessDLQ: {0: {Offset: tc.committed, Metadata: tc.metadata, LeaderEpoch: -1}},
			}, nil)
			require.NoError(t, err)
			for _, parts := range resp.Errors {
				for _, kerr := range parts {
					require.Equal(t, sarama.ErrNoError, kerr)
				}
			}
			d := dispatch.New()
			t.Cleanup(func() { _ = d.Close() })
			msgs, err := d.Subscribe(t.Context(), "Orders.create")
			require.NoError(t, err)
			var mu sync.Mutex
			var handled []string
			go func() {
				for msg := range msgs {
					mu.Lock()
					handled = append(handled, string(msg.Payload))
					mu.Unlock()
					msg.Ack()
				}
			}()
			rp, err := dlq.NewReprocessor(dlq.ReprocessorConfig{
				Client: env.client, Queue: env.queue, Dispatcher: d, Transactions: &flushCommits{admin: env.admin},
			}, watermill.NopLogger{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = rp.Close() })

			p, err := rp.Reprocess(t.Context(), dlq.ReprocessOptions{Topic: "orders"})
			require.NoError(t, err)
			mu.Lock()
			assert.Equal(t, tc.handled, handled)
			mu.Unlock()
			assert.Equal(t, int64(len(tc.handled)), p.Reprocessed)
			assert.Equal(t, int64(5), env.committed(t), "the run's last position, flushed")
		})
	}
}
