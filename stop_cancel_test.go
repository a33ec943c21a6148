package kafkaevents_test

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

const abandonedLine = "Stopping: handler returned after its context was cancelled; the record is left uncommitted and will be delivered again"

// TestStopLeavesTheRecordOfACancelledHandler stops the stack while a
// handler waits on its message's context: once the shutdown timeout passes,
// the stop cancels that context and the handler returns ctx.Err(), as Go
// handlers do. That is not a failure: no retry record and no DLQ record are
// written, and the record, left uncommitted, is delivered again to the next
// instance of the service.
func TestStopLeavesTheRecordOfACancelledHandler(t *testing.T) {
	tests := []struct {
		name    string
		retries bool
	}{
		{"retries on", true},
		{"retries off", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("stopcancel")
			env.createTopics(t, 1, topic)
			cfg := env.baseConfig("stopcancel")
			cfg.Retry.Enabled = kafkaevents.Bool(tt.retries)
			cfg.Consumer.ShutdownTimeout = 500 * time.Millisecond

			logs := &recordingLogger{}
			entered := make(chan struct{}, 1)
			first := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "stopcancel.handle", func(msg *message.Message) error {
					entered <- struct{}{}
					<-msg.Context().Done()
					return msg.Context().Err()
				})
				require.NoError(t, err)
			}, kafkaevents.WithLogger(logs))
			_, err := first.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "in flight"})
			require.NoError(t, err)
			select {
			case <-entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the handler was not called")
			}
			first.Stop()
			require.Eventually(t, func() bool {
				return strings.Contains(strings.Join(logs.lines(), "\n"), abandonedLine)
			}, 30*time.Second, 20*time.Millisecond, "the stop's cancellation is logged as such")
			assert.Zero(t, first.Stack.RetryStats().Scheduled, "no retry counted")
			assert.Zero(t, first.Stack.RetryStats().ErrorsEncountered, "no failure counted")
			assert.Zero(t, first.Stack.DLQStats().MessagesStored, "nothing dead-lettered")

			handled := make(chan string, 4)
			second := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "stopcancel.handle", func(msg *message.Message) error {
					handled <- string(msg.Payload)
					return nil
				})
				require.NoError(t, err)
			})
			select {
			case p := <-handled:
				assert.Equal(t, "in flight", p, "the record is delivered again")
			case <-time.After(30 * time.Second):
				t.Fatal("the record was not delivered again")
			}
			waitSettled(t, second.Stack, topic, 30*time.Second)
			assert.Equal(t, 1, strings.Count(strings.Join(logs.lines(), "\n"), abandonedLine),
				"one line for the record, though the retry and the DLQ middleware both see it")

			// Nothing was written to the retry lanes or the DLQ, by either
			// instance.
			client := env.client(t)
			for _, out := range append(second.Stack.RetryTopics(), second.Stack.DLQTopic()) {
				parts, err := client.Partitions(out)
				require.NoError(t, err, out)
				for _, p := range parts {
					end, err := client.GetOffset(out, p, sarama.OffsetNewest)
					require.NoError(t, err, out)
					assert.Zero(t, end, "records in %s/%d", out, p)
				}
			}
		})
	}
}
