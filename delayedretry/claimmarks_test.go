package delayedretry

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type markRecorder struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	marks []int64
}

func (s *markRecorder) MarkMessage(msg *sarama.ConsumerMessage, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, msg.Offset)
}

// TestClaimMarksInOrder: a record's offset is marked only once every record
// before it is done, whatever order they finish in.
func TestClaimMarksInOrder(t *testing.T) {
	sess := &markRecorder{}
	m := newClaimMarks(sess, func(string) int { return 4 })
	var done []func()
	for off := int64(10); off < 15; off++ {
		done = append(done, m.add(&sarama.ConsumerMessage{Offset: off}))
	}
	done[2]()
	done[1]()
	assert.Empty(t, sess.marks, "offset 10 is not done")
	done[0]()
	assert.Equal(t, []int64{12}, sess.marks, "10, 11 and 12 done: marked through 12")
	done[4]()
	done[3]()
	assert.Equal(t, []int64{12, 14}, sess.marks)
}

// TestClaimMarksSlots: a handler with a concurrency of 1 is delivered in
// line; above 1, at most that many at once.
func TestClaimMarksSlots(t *testing.T) {
	m := newClaimMarks(&markRecorder{}, func(id string) int {
		if id == "wide" {
			return 2
		}
		return 1
	})
	_, ok := m.acquire(t.Context(), "narrow")
	assert.False(t, ok, "one at a time: in line")
	r1, ok := m.acquire(t.Context(), "wide")
	require.True(t, ok)
	r2, ok := m.acquire(t.Context(), "wide")
	require.True(t, ok)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, ok = m.acquire(ctx, "wide")
	assert.False(t, ok, "both slots taken until ctx ends")
	r1()
	r3, ok := m.acquire(t.Context(), "wide")
	require.True(t, ok)
	r2()
	r3()
	m.wait()
}
