package delayedretry

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
)

// claimMarks marks the offsets of one claim of a retry partition in order
// when some of its records are dispatched beside each other: a record's
// offset is marked only once it and every record before it are done, so the
// committed offset never passes a record still owed a delivery.
type claimMarks struct {
	sess  sarama.ConsumerGroupSession
	limit func(handlerID string) int

	mu      sync.Mutex
	pending []*pendingRecord // in offset order
	slots   map[string]chan struct{}
	running sync.WaitGroup
}

type pendingRecord struct {
	rec  *sarama.ConsumerMessage
	done bool
}

func newClaimMarks(sess sarama.ConsumerGroupSession, limit func(string) int) *claimMarks {
	return &claimMarks{sess: sess, limit: limit, slots: map[string]chan struct{}{}}
}

// add registers rec and returns the func that says it is done.
func (m *claimMarks) add(rec *sarama.ConsumerMessage) func() {
	p := &pendingRecord{rec: rec}
	m.mu.Lock()
	m.pending = append(m.pending, p)
	m.mu.Unlock()
	return func() { m.done(p) }
}

// done marks p done, and marks the offsets of the records done in a row at
// the front.
func (m *claimMarks) done(p *pendingRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.done = true
	var last *sarama.ConsumerMessage
	for len(m.pending) > 0 && m.pending[0].done {
		last = m.pending[0].rec
		m.pending[0] = nil
		m.pending = m.pending[1:]
	}
	if last != nil {
		m.sess.MarkMessage(last, "")
	}
}

// acquire takes one of the handler's slots when its concurrency is above 1,
// waiting while all are taken; ok is false for a handler that takes one
// record at a time (the caller delivers in line) and when ctx ended first.
func (m *claimMarks) acquire(ctx context.Context, handlerID string) (release func(), ok bool) {
	n := 1
	if m.limit != nil {
		n = m.limit(handlerID)
	}
	if n <= 1 {
		return nil, false
	}
	m.mu.Lock()
	slots := m.slots[handlerID]
	if slots == nil {
		slots = make(chan struct{}, n)
		m.slots[handlerID] = slots
	}
	m.mu.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	m.running.Add(1)
	return func() {
		<-slots
		m.running.Done()
	}, true
}

// wait waits for the records dispatched beside others to be done (or given
// up when the session ends), so that their marks precede the commit of the
// session's end.
func (m *claimMarks) wait() { m.running.Wait() }
