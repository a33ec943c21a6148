package dlq

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/internal/embedded"
)

type producerSender struct{ p sarama.SyncProducer }

func (s producerSender) SendRecord(_ context.Context, rec *sarama.ProducerMessage) error {
	_, _, err := s.p.SendMessage(rec)
	return err
}

// runLogs returns started RunLogs on one runs topic, one per config.
func runLogs(t *testing.T, cfgs ...RunLogConfig) []*RunLog {
	t.Helper()
	broker := embedded.New(t, embedded.Partitions(1), embedded.Topics("svc.dlq.runs"))
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	var logs []*RunLog
	for _, c := range cfgs {
		client, err := sarama.NewClient(broker.Addrs(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = client.Close() })
		p, err := sarama.NewSyncProducerFromClient(client)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		c.Sender, c.Topic = producerSender{p}, "svc.dlq.runs"
		l, err := NewRunLog(c)
		require.NoError(t, err)
		require.NoError(t, l.Start(client))
		t.Cleanup(func() { _ = l.Close() })
		logs = append(logs, l)
	}
	return logs
}

// signals returns the stop and lost callbacks of a run, and channels that
// say they were called.
func signals() (stop func(), lost func(string), stopped chan struct{}, lostWhy chan string) {
	stopped, lostWhy = make(chan struct{}, 1), make(chan string, 1)
	return func() { stopped <- struct{}{} }, func(why string) { lostWhy <- why }, stopped, lostWhy
}

func TestRunLogLeaseExpires(t *testing.T) {
	ls := runLogs(t, RunLogConfig{Holder: "a", Lease: 600 * time.Millisecond}, RunLogConfig{Holder: "b"})
	a, b := ls[0], ls[1]
	stop, lost, _, lostWhy := signals()
	require.NoError(t, a.acquire(t.Context(), "orders", "run-a", Progress{Topic: "orders", Reprocessed: 3}, stop, lost))

	// a never renews, as a killed instance would not.
	err := b.acquire(t.Context(), "orders", "run-b1", Progress{Topic: "orders"}, func() {}, func(string) {})
	var held *RunHeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "a", held.Holder)
	assert.Equal(t, "run-a", held.RunID)
	assert.ErrorIs(t, err, ErrAlreadyRunning)

	time.Sleep(700 * time.Millisecond)
	running, last := b.status()
	assert.Empty(t, running, "a lease not renewed is not shown running")
	assert.Equal(t, StateAbandoned, last["orders"].State)
	assert.Equal(t, int64(3), last["orders"].Reprocessed, "with its last progress")

	require.NoError(t, b.acquire(t.Context(), "orders", "run-b2", Progress{Topic: "orders"}, func() {}, func(string) {}))
	select {
	case why := <-lostWhy:
		assert.Contains(t, why, "expired")
	case <-time.After(10 * time.Second):
		t.Fatal("the run whose lease was taken over was not told")
	}
	running, last = a.status()
	require.Len(t, running, 1)
	assert.Equal(t, "run-b2", running[0].RunID)
	assert.Equal(t, "b", running[0].Holder)
	assert.Equal(t, StateAbandoned, last["orders"].State)
	assert.Equal(t, "run-a", last["orders"].RunID)
}

func TestRunLogSameInstanceTakesOver(t *testing.T) {
	ls := runLogs(t, RunLogConfig{Instance: "pod-0"}, RunLogConfig{Instance: "pod-0"}, RunLogConfig{Instance: "pod-1"})
	before, after, other := ls[0], ls[1], ls[2]
	stop, lost, _, lostWhy := signals()
	require.NoError(t, before.acquire(t.Context(), "orders", "run-1", Progress{Topic: "orders"}, stop, lost))
	err := other.acquire(t.Context(), "orders", "run-x", Progress{Topic: "orders"}, func() {}, func(string) {})
	require.ErrorIs(t, err, ErrAlreadyRunning, "another instance waits for the lease")
	// The same instance, restarted: its run takes the lease at once.
	require.NoError(t, after.acquire(t.Context(), "orders", "run-2", Progress{Topic: "orders"}, func() {}, func(string) {}))
	select {
	case <-lostWhy:
	case <-time.After(10 * time.Second):
		t.Fatal("the predecessor's run was not told")
	}
	require.NoError(t, other.Sync(t.Context()))
	running, _ := other.status()
	require.Len(t, running, 1)
	assert.Equal(t, "run-2", running[0].RunID)
	assert.Equal(t, "pod-0", running[0].Holder)
}

func TestRunLogStopFromAnotherInstance(t *testing.T) {
	ls := runLogs(t, RunLogConfig{Holder: "a"}, RunLogConfig{Holder: "b"})
	a, b := ls[0], ls[1]
	stop, lost, stopped, _ := signals()
	require.NoError(t, a.acquire(t.Context(), "orders", "run-a", Progress{Topic: "orders"}, stop, lost))
	n, err := b.requestStop(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the run was not stopped")
	}
	p := Progress{Topic: "orders", State: StateStopped, FinishedAt: time.Now().UTC()}
	require.NoError(t, a.finish(t.Context(), "orders", "run-a", p))
	require.NoError(t, b.Sync(t.Context()))
	running, last := b.status()
	assert.Empty(t, running)
	assert.Equal(t, StateStopped, last["orders"].State)
	assert.Equal(t, "a", last["orders"].Holder)
	n, err = b.requestStop(t.Context(), "orders")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to stop")
}

func TestRunLogIgnoresRecordsItCannotRead(t *testing.T) {
	ls := runLogs(t, RunLogConfig{Holder: "a"})
	a := ls[0]
	rec := &sarama.ProducerMessage{Topic: a.Topic(), Key: sarama.StringEncoder("not json"), Value: sarama.StringEncoder("{")}
	require.NoError(t, a.cfg.Sender.SendRecord(t.Context(), rec))
	require.NoError(t, a.Sync(t.Context()))
	require.NoError(t, a.acquire(t.Context(), "orders", "run-a", Progress{Topic: "orders"}, func() {}, func(string) {}))
	running, _ := a.status()
	assert.Len(t, running, 1, "the reader went on past the record")
}
