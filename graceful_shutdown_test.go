package kafkaevents_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestGracefulShutdownCommitsInFlightMessages closes the router while a
// handler runs. The handler finishes, and its message's offset must be
// committed, so that a restart does not deliver it again. The stack has a
// second handler on another topic, so the group has a second member that
// leaves at the same time.
func TestGracefulShutdownCommitsInFlightMessages(t *testing.T) {
	env := newEnv(t)
	topic, other := uniq("inflight"), uniq("inflight-other")
	env.createTopics(t, 1, topic, other)
	cfg := env.baseConfig("inflight")
	entered := make(chan string, 4)
	release := make(chan struct{})
	logger := &closingLogger{LoggerAdapter: watermill.NopLogger{}, closing: make(chan struct{})}
	stack, err := kafkaevents.New(cfg, kafkaevents.WithLogger(logger))
	require.NoError(t, err)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	require.NoError(t, err)
	stack.Install(router)
	_, err = stack.AddHandler(router, topic, "InFlight.handle", func(msg *message.Message) error {
		entered <- string(msg.Payload)
		<-release
		return nil
	})
	require.NoError(t, err)
	_, err = stack.AddHandler(router, other, "InFlight.other", func(*message.Message) error { return nil })
	require.NoError(t, err)
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	// Both subscriptions in the group, and no rebalance to come that would
	// revoke the partition while the handler runs.
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.Eventually(t, func() bool {
		gs, err := admin.DescribeConsumerGroups([]string{cfg.Consumer.GroupID})
		return err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) == 2
	}, 30*time.Second, 50*time.Millisecond)

	_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "in flight"})
	require.NoError(t, err)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was not called")
	}

	// The next message waits behind the one in flight; it is handed out
	// once that one is acknowledged, in the middle of the drain.
	_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "next"})
	require.NoError(t, err)

	stopped := make(chan struct{})
	go func() {
		_ = router.Close()
		_ = stack.Close()
		close(stopped)
	}()
	<-logger.closing
	// The handler keeps running for a while into the shutdown.
	time.Sleep(300 * time.Millisecond)
	close(release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the router and the stack did not stop")
	}

	assert.Equal(t, int64(1), committedOffset(t, admin, cfg.Consumer.GroupID, topic), "the offset of the message handled during the shutdown is committed")
	assert.Empty(t, entered, "the message handed out during the drain was not handled")

	// The next instance gets the refused message, and only that one.
	stack2, err := kafkaevents.New(cfg)
	require.NoError(t, err)
	router2, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	stack2.Install(router2)
	got := make(chan string, 4)
	_, err = stack2.AddHandler(router2, topic, "InFlight.handle", func(msg *message.Message) error {
		got <- string(msg.Payload)
		return nil
	})
	require.NoError(t, err)
	go func() { _ = router2.Run(context.Background()) }()
	defer func() {
		_ = router2.Close()
		_ = stack2.Close()
	}()
	select {
	case p := <-got:
		assert.Equal(t, "next", p)
	case <-time.After(30 * time.Second):
		t.Fatal("the message refused during the drain was not delivered again")
	}
	require.Eventually(t, func() bool { return committedOffset(t, admin, cfg.Consumer.GroupID, topic) == 2 }, 30*time.Second, 100*time.Millisecond)
	assert.Empty(t, got, "no other delivery")
}

// closingLogger closes closing when the router logs that it is closing.
type closingLogger struct {
	watermill.LoggerAdapter
	closing chan struct{}
	once    sync.Once
}

func (l *closingLogger) Info(msg string, fields watermill.LogFields) {
	if msg == "Closing router" {
		l.once.Do(func() { close(l.closing) })
	}
}

func (l *closingLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }

// TestStoppedHandlerDrainsItsSubscription stops one handler of a running
// router (Handler.Stop cancels its subscription's context, without closing
// the subscriber) while it handles a message. The message in flight is
// committed, the next one is not handled, the handler stops after the
// drain, and the router's other handler keeps consuming.
func TestStoppedHandlerDrainsItsSubscription(t *testing.T) {
	env := newEnv(t)
	topic, other := uniq("stopped"), uniq("stopped-other")
	env.createTopics(t, 1, topic, other)
	cfg := env.baseConfig("stopped")
	cfg.Consumer.ShutdownTimeout = 2 * time.Second
	entered := make(chan string, 4)
	release := make(chan struct{})
	stack, err := kafkaevents.New(cfg, kafkaevents.WithLogger(watermill.NopLogger{}))
	require.NoError(t, err)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	stack.Install(router)
	stopped, err := stack.AddHandler(router, topic, "Stopped.handle", func(msg *message.Message) error {
		entered <- string(msg.Payload)
		<-release
		return nil
	})
	require.NoError(t, err)
	others := make(chan string, 4)
	_, err = stack.AddHandler(router, other, "Stopped.other", func(msg *message.Message) error {
		others <- string(msg.Payload)
		return nil
	})
	require.NoError(t, err)
	go func() { _ = router.Run(context.Background()) }()
	defer func() {
		_ = router.Close()
		_ = stack.Close()
	}()
	<-router.Running()
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.Eventually(t, func() bool {
		gs, err := admin.DescribeConsumerGroups([]string{cfg.Consumer.GroupID})
		return err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) == 2
	}, 30*time.Second, 50*time.Millisecond)

	_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "in flight"})
	require.NoError(t, err)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was not called")
	}
	_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "next"})
	require.NoError(t, err)
	stopped.Stop()
	time.Sleep(300 * time.Millisecond)
	close(release)
	select {
	case <-stopped.Stopped():
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped handler did not stop")
	}
	assert.Empty(t, entered, "the message handed out during the drain was not handled")
	require.Eventually(t, func() bool { return committedOffset(t, admin, cfg.Consumer.GroupID, topic) == 1 },
		30*time.Second, 100*time.Millisecond, "the offset of the message handled during the drain is committed")

	_, err = stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: other, Value: "still consumed"})
	require.NoError(t, err)
	select {
	case p := <-others:
		assert.Equal(t, "still consumed", p)
	case <-time.After(30 * time.Second):
		t.Fatal("the other handler stopped consuming")
	}
}
