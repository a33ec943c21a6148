package kafkaevents_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/kafkatest"
)

func nopHandler(*message.Message) error { return nil }

// newIdleStack builds a stack and a router on an embedded broker, not running.
func newIdleStack(t *testing.T, cfg kafkaevents.Config) (*kafkaevents.Stack, *message.Router) {
	t.Helper()
	broker := kafkatest.New(t)
	cfg.Brokers = broker.Addrs()
	s, err := kafkaevents.New(cfg, kafkaevents.WithLogger(watermill.NopLogger{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	require.NoError(t, err)
	s.Install(r)
	return s, r
}

// Mistakes in AddHandler fail at once, with a message that names the field
// or option to change, and register nothing.
func TestAddHandlerRejectsMistakes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   kafkaevents.Config
		first bool // register "charge" on "payments" first
		topic string
		opts  []kafkaevents.HandlerOption
		want  []string
	}{
		{
			name: "second handler on a topic", first: true, topic: "payments",
			want: []string{`topic "payments" is already handled by "charge"`, `consumer group "billing-group"`, "Consumer.GroupID"},
		},
		{
			name: "WithRetry and WithoutRetry", topic: "refunds",
			opts: []kafkaevents.HandlerOption{kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: time.Second}), kafkaevents.WithoutRetry()},
			want: []string{"WithRetry and WithoutRetry both given"},
		},
		{
			name: "jitter out of range", topic: "refunds",
			opts: []kafkaevents.HandlerOption{kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: time.Second, Jitter: 2})},
			want: []string{"WithRetry", "field Jitter = 2", "[0,1]"},
		},
		{
			name: "negative attempts", topic: "refunds",
			opts: []kafkaevents.HandlerOption{kafkaevents.WithRetry(delayedretry.Policy{Attempts: -1})},
			want: []string{"WithRetry", "field Attempts = -1"},
		},
		{
			name: "base delay above the inherited cap", topic: "refunds",
			opts: []kafkaevents.HandlerOption{kafkaevents.WithRetry(delayedretry.Policy{Attempts: 2, BaseDelay: time.Minute})},
			want: []string{"WithRetry", "field BaseDelay = 1m0s", "Config.Retry.MaxDelay (30s)", "set MaxDelay"},
		},
		{
			name: "WithRetry with retries off", cfg: kafkaevents.Config{Retry: kafkaevents.RetryConfig{Enabled: kafkaevents.Bool(false)}}, topic: "refunds",
			opts: []kafkaevents.HandlerOption{kafkaevents.WithRetry(delayedretry.Policy{Attempts: 1, BaseDelay: time.Second})},
			want: []string{"WithRetry given but retries are off", "KAFKA_RETRY_ENABLED"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ClientID = "billing"
			s, r := newIdleStack(t, cfg)
			if tc.first {
				_, err := s.AddHandler(r, "payments", "charge", nopHandler)
				require.NoError(t, err)
			}
			_, err := s.AddHandler(r, tc.topic, "second", nopHandler, tc.opts...)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, h := range s.Handlers() {
				assert.NotEqual(t, "second", h.ID, "nothing registered")
			}
			assert.NotContains(t, r.Handlers(), "second")
		})
	}
}

// A per-handler policy that leaves MaxDelay at 0 gets the stack's cap.
func TestWithRetryInheritsTheMaxDelay(t *testing.T) {
	s, r := newIdleStack(t, kafkaevents.Config{ClientID: "billing", Retry: kafkaevents.RetryConfig{MaxDelay: 20 * time.Second}})
	_, err := s.AddHandler(r, "payments", "charge", nopHandler, kafkaevents.WithRetry(delayedretry.Policy{Attempts: 10, BaseDelay: time.Second}))
	require.NoError(t, err)
	assert.Equal(t, 20*time.Second, s.Retrier().PolicyFor("charge").MaxDelay)
	assert.Equal(t, 20*time.Second, s.Retrier().PolicyFor("charge").Delay(10), "capped")
	assert.Equal(t, int64(20000), s.Handlers()[0].Options.Retry.MaxDelayMs)
}
