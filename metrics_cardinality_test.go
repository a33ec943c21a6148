package kafkaevents_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/middleware"
)

// TestForgedHandlerIDsDoNotGrowTheMetrics writes 1,000 retry records that
// name handlers and original topics that do not exist, as anyone who can
// write to a retry topic can. They go to the DLQ as unroutable, counted
// under the label value "unknown": the number of series a scrape returns
// stays what it was, and the log line about them is rate-limited.
func TestForgedHandlerIDsDoNotGrowTheMetrics(t *testing.T) {
	const forged = 1000
	env := newEnv(t)
	topic := uniq("forged")
	env.createTopics(t, 1, topic)
	logs := &countingLogger{match: "names no registered handler"}
	rn := start(t, env.baseConfig("forged"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Forged.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	}, kafkaevents.WithLogger(logs))

	// The lag gauge appears once the lag of the group's partitions is known.
	var before int
	require.Eventually(t, func() bool {
		mfs, err := rn.Stack.Gatherer().Gather()
		require.NoError(t, err)
		before = countSeries(t, rn.Stack.Gatherer())
		for _, mf := range mfs {
			if mf.GetName() == "kafkaevents_consumer_lag" {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	msgs := make([]*sarama.ProducerMessage, 0, forged)
	for i := range forged {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: rn.Stack.RetryTopics()[i%len(rn.Stack.RetryTopics())], Value: sarama.StringEncoder("forged"),
			Headers: []sarama.RecordHeader{
				{Key: []byte(middleware.HeaderHandlerID), Value: []byte(fmt.Sprintf("forged-handler-%d", i))},
				{Key: []byte(middleware.HeaderOriginalTopic), Value: []byte(fmt.Sprintf("forged-topic-%d", i))},
				{Key: []byte(middleware.HeaderRetryCount), Value: []byte("1")},
				{Key: []byte(middleware.HeaderRetryAfter), Value: []byte(time.Now().UTC().Format(middleware.TimeFormat))},
			},
		})
	}
	require.NoError(t, raw.SendMessages(msgs))

	require.Eventually(t, func() bool { return rn.Stack.DLQStats().MessagesStored == forged },
		60*time.Second, 50*time.Millisecond, "the forged records reach the DLQ")
	after := countSeries(t, rn.Stack.Gatherer())
	t.Logf("series before: %d, after %d forged records: %d", before, forged, after)
	assert.LessOrEqual(t, after, before+2, "the series count stays bounded")

	rs := rn.Stack.RetryStats()
	assert.Equal(t, int64(forged), rs.Handlers[delayedretry.UnknownHandler].Unroutable)
	assert.NotContains(t, rs.Handlers, "forged-handler-1")
	ds := rn.Stack.DLQStats()
	assert.Equal(t, int64(forged), ds.ByTopic[dlq.UnknownTopic])
	assert.NotContains(t, ds.ByTopic, "forged-topic-1")
	assert.LessOrEqual(t, logs.n.Load(), int64(3), "the log line about unknown handlers is rate-limited")
	assert.Positive(t, logs.n.Load())

	// A reset keeps the known series, at 0, and removes none of them.
	require.NoError(t, rn.Stack.ResetMetrics("all"))
	assert.Equal(t, before, countSeries(t, rn.Stack.Gatherer()))
}

// countSeries returns the number of series reg exposes.
func countSeries(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// countingLogger counts the log lines whose message contains match.
type countingLogger struct {
	watermill.NopLogger
	match string
	n     atomic.Int64
}

func (l *countingLogger) Info(msg string, _ watermill.LogFields) {
	if strings.Contains(msg, l.match) {
		l.n.Add(1)
	}
}

func (l *countingLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }
