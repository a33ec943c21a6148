package dlq_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/dispatch"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/internal/embedded"
	"github.com/torix/kafkaevents/wire"
)

const (
	reprocessDLQ   = "svc.dlq"
	reprocessGroup = "svc.dlq.reprocess.orders"
)

// reprocessEnv is a one-partition DLQ on the embedded broker, a Queue that
// stores records of topic orders in it and a Reprocessor whose handler
// Orders.create acknowledges every record and remembers its value.
type reprocessEnv struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	queue  *dlq.Queue
	rp     *dlq.Reprocessor
	logs   *watermill.CaptureLoggerAdapter

	mu      sync.Mutex
	handled []string
}

func newReprocessEnv(t *testing.T) *reprocessEnv {
	t.Helper()
	broker := embedded.New(t, embedded.Partitions(1), embedded.Topics(reprocessDLQ))
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	client, err := sarama.NewClient(broker.Addrs(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	admin, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	producer, err := sarama.NewSyncProducerFromClient(client)
	require.NoError(t, err)
	t.Cleanup(func() { _ = producer.Close() })
	q, err := dlq.New(dlq.Config{Sender: syncSender{producer}, Topic: reprocessDLQ}, nil)
	require.NoError(t, err)

	env := &reprocessEnv{client: client, admin: admin, queue: q, logs: watermill.NewCaptureLogger()}
	d := dispatch.New()
	t.Cleanup(func() { _ = d.Close() })
	msgs, err := d.Subscribe(t.Context(), "Orders.create")
	require.NoError(t, err)
	go func() {
		for msg := range msgs {
			env.mu.Lock()
			env.handled = append(env.handled, string(msg.Payload))
			env.mu.Unlock()
			msg.Ack()
		}
	}()
	env.rp, err = dlq.NewReprocessor(dlq.ReprocessorConfig{Client: client, Queue: q, Dispatcher: d}, env.logs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.rp.Close() })
	return env
}

// store writes DLQ records of orders with these values.
func (e *reprocessEnv) store(t *testing.T, values ...string) {
	t.Helper()
	for _, v := range values {
		require.NoError(t, e.queue.Store(t.Context(), dlq.Record{
			Topic: "orders", HandlerID: "Orders.create", Reason: wire.ReasonRetriesExhausted, Err: errors.New("db down"), Value: []byte(v),
		}))
	}
}

// commit sets the reprocess group's committed offset of the DLQ partition,
// backwards or beyond the end as well, the way an operator's offset reset
// or a DLQ deleted and recreated under the group leaves it.
func (e *reprocessEnv) commit(t *testing.T, offset int64) {
	t.Helper()
	resp, err := e.admin.AlterConsumerGroupOffsets(reprocessGroup, map[string]map[int32]sarama.OffsetAndMetadata{
		reprocessDLQ: {0: {Offset: offset, LeaderEpoch: -1}},
	}, nil)
	require.NoError(t, err)
	for _, parts := range resp.Errors {
		for _, kerr := range parts {
			require.Equal(t, sarama.ErrNoError, kerr)
		}
	}
	require.Equal(t, offset, e.committed(t), "precondition: the offset is committed")
}

// committed returns the reprocess group's committed offset of the DLQ
// partition, -1 for none.
func (e *reprocessEnv) committed(t *testing.T) int64 {
	t.Helper()
	resp, err := e.admin.ListConsumerGroupOffsets(reprocessGroup, map[string][]int32{reprocessDLQ: {0}})
	require.NoError(t, err)
	blk := resp.GetBlock(reprocessDLQ, 0)
	require.NotNil(t, blk)
	require.Equal(t, sarama.ErrNoError, blk.Err)
	return blk.Offset
}

func (e *reprocessEnv) takeHandled() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.handled
	e.handled = nil
	return h
}

// outOfRangeLogs returns the fields of the messages logged about a
// committed offset outside the partition's log.
func (e *reprocessEnv) outOfRangeLogs() []watermill.LogFields {
	var out []watermill.LogFields
	for _, msgs := range e.logs.Captured() {
		for _, m := range msgs {
			if _, ok := m.Fields["log_start_offset"]; ok {
				out = append(out, m.Fields)
			}
		}
	}
	return out
}

func values(prefix string, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return vs
}

// TestReprocessDoesNotTrustACommittedOffsetOutsideTheLog: a run starts at
// its group's committed offset only when that lies in the partition's log.
// One past the end (the DLQ was deleted and recreated, or lost records) or
// below the log start (retention deleted records) is reported once and the
// run reads the partition from its log start, so no record that is still
// there is skipped. An offset in the log, the end included, is trusted.
func TestReprocessDoesNotTrustACommittedOffsetOutsideTheLog(t *testing.T) {
	tests := []struct {
		name      string
		stored    int
		trimmed   int64 // records deleted from the start before the run
		committed int64
		want      []string
		warned    bool
	}{
		{name: "past the end", stored: 3, committed: 50, want: values("o", 3), warned: true},
		{name: "below the log start", stored: 3, trimmed: 2, committed: 1, want: []string{"o-2"}, warned: true},
		{name: "at the end", stored: 3, committed: 3, want: nil},
		{name: "in the log", stored: 3, committed: 1, want: []string{"o-1", "o-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newReprocessEnv(t)
			env.store(t, values("o", tt.stored)...)
			if tt.trimmed > 0 {
				require.NoError(t, env.admin.DeleteRecords(reprocessDLQ, map[int32]int64{0: tt.trimmed}))
			}
			env.commit(t, tt.committed)
			b, err := dlq.NewBrowser(dlq.BrowserConfig{Client: env.client, Topic: reprocessDLQ})
			require.NoError(t, err)
			pending, err := b.Search(t.Context(), dlq.Query{Topic: "orders", Pending: true, Limit: 10})
			require.NoError(t, err)
			assert.Equal(t, len(tt.want), pending.Total, "Pending lists what the run reads")

			p, err := env.rp.Reprocess(t.Context(), dlq.ReprocessOptions{Topic: "orders"})
			require.NoError(t, err)
			assert.Equal(t, dlq.StateCompleted, p.State)
			assert.Equal(t, int64(len(tt.want)), p.Reprocessed)
			assert.Equal(t, tt.want, env.takeHandled())
			assert.Equal(t, int64(tt.stored), env.committed(t), "the run's position is the partition's end")

			logs := env.outOfRangeLogs()
			if !tt.warned {
				assert.Empty(t, logs)
				return
			}
			require.Len(t, logs, 1)
			assert.Equal(t, reprocessGroup, logs[0]["group"])
			assert.Equal(t, reprocessDLQ, logs[0]["dlq_topic"])
			assert.Equal(t, int32(0), logs[0]["partition"])
			assert.Equal(t, tt.committed, logs[0]["committed_offset"])
		})
	}
}

// TestReprocessReplacesAnOffsetPastTheEndOfAnEmptyDLQ: a run over a
// recreated, still empty DLQ commits the log start in place of the offset
// past the end, so that once the DLQ grows beyond that offset the next run
// does not take it for its position and skip the records before it.
func TestReprocessReplacesAnOffsetPastTheEndOfAnEmptyDLQ(t *testing.T) {
	env := newReprocessEnv(t)
	env.commit(t, 3)

	p, err := env.rp.Reprocess(t.Context(), dlq.ReprocessOptions{Topic: "orders"})
	require.NoError(t, err)
	assert.Equal(t, dlq.StateCompleted, p.State)
	assert.Zero(t, p.Reprocessed)
	assert.Len(t, env.outOfRangeLogs(), 1)
	assert.Equal(t, int64(0), env.committed(t))

	env.store(t, values("o", 5)...)
	p, err = env.rp.Reprocess(t.Context(), dlq.ReprocessOptions{Topic: "orders"})
	require.NoError(t, err)
	assert.Equal(t, int64(5), p.Reprocessed)
	assert.True(t, slices.Equal(values("o", 5), env.takeHandled()))
	assert.Len(t, env.outOfRangeLogs(), 1, "the offset in the log is trusted")
}
