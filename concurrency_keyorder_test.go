package kafkaevents_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// keyExclusion records, per key, whether a record of it is in the handler,
// so that two records of one key running at once are caught when the second
// one enters, whatever their order.
type keyExclusion struct {
	mu       sync.Mutex
	inside   map[string]string // key -> value in the handler
	overlaps []string
}

func (x *keyExclusion) enter(key, value string) func() {
	x.mu.Lock()
	if other, busy := x.inside[key]; busy {
		x.overlaps = append(x.overlaps, fmt.Sprintf("%s while %s ran", value, other))
	}
	x.inside[key] = value
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		if x.inside[key] == value {
			delete(x.inside, key)
		}
		x.mu.Unlock()
	}
}

// TestConcurrencyRunsOneRecordOfAKeyAtATime: with 64 records of a partition
// in flight and only 10 keys, most records wait for an earlier record of
// their key. No two records of one key may ever be in the handler at once,
// and each key's records run in offset order.
func TestConcurrencyRunsOneRecordOfAKeyAtATime(t *testing.T) {
	env := newEnv(t)
	topic := uniq("conc-keys")
	env.createTopics(t, 1, topic)
	const keys, perKey = 10, 60
	check := newOrderCheck()
	excl := &keyExclusion{inside: map[string]string{}}
	rn := start(t, env.baseConfig("conc-keys"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Keys.concurrent", func(msg *message.Message) error {
			defer check.enter(msg)()
			k, _, _ := strings.Cut(string(msg.Payload), ":")
			defer excl.enter(k, string(msg.Payload))()
			time.Sleep(time.Duration(200+rand.IntN(800)) * time.Microsecond)
			return nil
		}, kafkaevents.WithConcurrency(64))
		require.NoError(t, err)
	})
	_, err := rn.Stack.Producer().SendBatch(t.Context(), keyedBatch(topic, keys*perKey, keys))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return check.distinct() == keys*perKey }, 60*time.Second, 20*time.Millisecond)

	excl.mu.Lock()
	assert.Empty(t, excl.overlaps, "records of one key in the handler at once")
	excl.mu.Unlock()
	check.mu.Lock()
	assert.Empty(t, check.violations, "per-key order")
	check.mu.Unlock()
	assert.Greater(t, check.peak.Load(), int32(3), "records of different keys ran side by side")
	assert.LessOrEqual(t, check.peak.Load(), int32(keys), "at most one record per key at a time")
}
