package kafkaevents_test

import (
	"context"
	"strings"
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

// inFlightRig is a running stack with two handlers, each on a topic of one
// partition, so that its consumer group has two members: the handler of
// topic blocks until release is closed, the one of other records what it
// gets.
type inFlightRig struct {
	cfg          kafkaevents.Config
	topic, other string
	stack        *kafkaevents.Stack
	router       *message.Router
	handler      *message.Handler // the handler of topic
	entered      chan string      // what the handler of topic got
	release      chan struct{}
	others       chan string // what the handler of other got
	admin        sarama.ClusterAdmin
}

// startInFlight starts the rig with logger, after mutate changed its
// configuration, and returns once the group is Stable with both members, so
// that no rebalance to come revokes a partition while a handler runs.
func startInFlight(t *testing.T, name string, logger watermill.LoggerAdapter, mutate func(*kafkaevents.Config)) *inFlightRig {
	t.Helper()
	env := newEnv(t)
	rig := &inFlightRig{
		topic: uniq(name), other: uniq(name + "-other"), cfg: env.baseConfig(name),
		entered: make(chan string, 4), release: make(chan struct{}), others: make(chan string, 4),
	}
	env.createTopics(t, 1, rig.topic, rig.other)
	if mutate != nil {
		mutate(&rig.cfg)
	}
	var err error
	rig.stack, err = kafkaevents.New(rig.cfg, kafkaevents.WithLogger(logger))
	require.NoError(t, err)
	rig.router, err = message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	require.NoError(t, err)
	rig.stack.Install(rig.router)
	rig.handler, err = rig.stack.AddHandler(rig.router, rig.topic, name+".handle", func(msg *message.Message) error {
		rig.entered <- string(msg.Payload)
		<-rig.release
		return nil
	})
	require.NoError(t, err)
	_, err = rig.stack.AddHandler(rig.router, rig.other, name+".other", func(msg *message.Message) error {
		rig.others <- string(msg.Payload)
		return nil
	})
	require.NoError(t, err)
	go func() { _ = rig.router.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = rig.router.Close()
		_ = rig.stack.Close()
	})
	<-rig.router.Running()
	rig.admin, err = sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rig.admin.Close() })
	require.Eventually(t, func() bool {
		gs, err := rig.admin.DescribeConsumerGroups([]string{rig.cfg.Consumer.GroupID})
		return err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) == 2
	}, 30*time.Second, 50*time.Millisecond)
	return rig
}

// holdOne sends "in flight" to topic and returns once its handler runs,
// after sending "next", which waits behind it: it is handed out once "in
// flight" is acknowledged.
func (rig *inFlightRig) holdOne(t *testing.T) {
	t.Helper()
	_, err := rig.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: rig.topic, Value: "in flight"})
	require.NoError(t, err)
	select {
	case <-rig.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was not called")
	}
	_, err = rig.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: rig.topic, Value: "next"})
	require.NoError(t, err)
}

// TestGracefulShutdownCommitsInFlightMessages closes the router while a
// handler runs. The handler finishes, and its message's offset must be
// committed, so that a restart does not deliver it again. The stack has a
// second handler on another topic, so the group has a second member that
// leaves at the same time. The next message, handed out during the drain,
// is not handled: the next instance gets it.
func TestGracefulShutdownCommitsInFlightMessages(t *testing.T) {
	logger := &closingLogger{LoggerAdapter: watermill.NopLogger{}, closing: make(chan struct{})}
	rig := startInFlight(t, "inflight", logger, nil)
	rig.holdOne(t)

	stopped := make(chan struct{})
	go func() {
		_ = rig.router.Close()
		_ = rig.stack.Close()
		close(stopped)
	}()
	<-logger.closing
	// The handler keeps running for a while into the shutdown.
	time.Sleep(300 * time.Millisecond)
	close(rig.release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the router and the stack did not stop")
	}

	assert.Equal(t, int64(1), committedOffset(t, rig.admin, rig.cfg.Consumer.GroupID, rig.topic), "the offset of the message handled during the shutdown is committed")
	assert.Empty(t, rig.entered, "the message handed out during the drain was not handled")

	// The next instance gets the refused message, and only that one.
	stack2, err := kafkaevents.New(rig.cfg)
	require.NoError(t, err)
	router2, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	require.NoError(t, err)
	stack2.Install(router2)
	got := make(chan string, 4)
	_, err = stack2.AddHandler(router2, rig.topic, "inflight.handle", func(msg *message.Message) error {
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
	require.Eventually(t, func() bool { return committedOffsetNow(rig.admin, rig.cfg.Consumer.GroupID, rig.topic) == 2 }, 30*time.Second, 100*time.Millisecond)
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
	rig := startInFlight(t, "stopped", watermill.NopLogger{}, func(c *kafkaevents.Config) {
		c.Consumer.ShutdownTimeout = 2 * time.Second
	})
	rig.holdOne(t)
	rig.handler.Stop()
	time.Sleep(300 * time.Millisecond)
	close(rig.release)
	select {
	case <-rig.handler.Stopped():
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped handler did not stop")
	}
	assert.Empty(t, rig.entered, "the message handed out during the drain was not handled")
	require.Eventually(t, func() bool { return committedOffsetNow(rig.admin, rig.cfg.Consumer.GroupID, rig.topic) == 1 },
		30*time.Second, 100*time.Millisecond, "the offset of the message handled during the drain is committed")

	_, err := rig.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: rig.other, Value: "still consumed"})
	require.NoError(t, err)
	select {
	case p := <-rig.others:
		assert.Equal(t, "still consumed", p)
	case <-time.After(30 * time.Second):
		t.Fatal("the other handler stopped consuming")
	}
}

// TestRunEndingOnItsContextStopsPromptly runs the router the README's way,
// router.Run(ctx) ending when ctx is done, with nothing in flight: it must
// stop at once, not after Consumer.ShutdownTimeout (30 s, the default), and
// the offset of the record it handled just before must be committed, so that
// the next instance does not get it again. The stack has two handlers, so
// that its group has two members that drain together.
func TestRunEndingOnItsContextStopsPromptly(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("runctx")
	cfg.Consumer.ShutdownTimeout = 30 * time.Second
	topic, other := uniq("runctx"), uniq("runctx-other")
	env.createTopics(t, 1, topic, other)

	// run starts an instance and returns its stack and a function that
	// cancels the context of router.Run, waits for Run to return, closes
	// the stack and returns how long it all took.
	run := func(handled chan<- string) (*kafkaevents.Stack, func() time.Duration) {
		stack, err := kafkaevents.New(cfg)
		require.NoError(t, err)
		router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.Consumer.ShutdownTimeout}, watermill.NopLogger{})
		require.NoError(t, err)
		stack.Install(router)
		for _, tp := range []string{topic, other} {
			_, err = stack.AddHandler(router, tp, "runctx."+tp, func(msg *message.Message) error {
				handled <- string(msg.Payload)
				return nil
			})
			require.NoError(t, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- router.Run(ctx) }()
		<-router.Running()
		stop := func() time.Duration {
			began := time.Now()
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(cfg.Consumer.ShutdownTimeout + 10*time.Second):
				t.Fatal("router.Run did not return")
			}
			require.NoError(t, stack.Close())
			return time.Since(began)
		}
		return stack, stop
	}
	receive := func(handled <-chan string) string {
		t.Helper()
		select {
		case p := <-handled:
			return p
		case <-time.After(30 * time.Second):
			t.Fatal("nothing was handled")
			return ""
		}
	}

	handled := make(chan string, 8)
	stack, stop := run(handled)
	_, err := stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "first"})
	require.NoError(t, err)
	require.Equal(t, "first", receive(handled))
	took := stop()
	t.Logf("router.Run(ctx) and Stack.Close returned %s after the cancel", took)
	assert.Less(t, took, 2*time.Second, "an idle router run with a context stops within 2 s")

	handled2 := make(chan string, 8)
	stack2, stop2 := run(handled2)
	_, err = stack2.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "second"})
	require.NoError(t, err)
	assert.Equal(t, "second", receive(handled2), "the record handled before the stop is not delivered again")
	stop2()
	assert.Empty(t, handled2)
}

// TestStuckHandlerShutdownSaysWhy stops the router while a handler is stuck:
// the stop waits for it at most Consumer.ShutdownTimeout and says so in the
// log, first what it waits for, then that it gave up.
func TestStuckHandlerShutdownSaysWhy(t *testing.T) {
	logs := &recordingLogger{}
	rig := startInFlight(t, "stuck", logs, func(c *kafkaevents.Config) {
		c.Consumer.ShutdownTimeout = time.Second
	})
	rig.holdOne(t)
	stopped := make(chan struct{})
	go func() {
		_ = rig.stack.Close() // the subscriber drains, waiting for the stuck handler
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return after the shutdown timeout")
	}
	close(rig.release)
	text := strings.Join(logs.lines(), "\n")
	assert.Contains(t, text, "Stopping: waiting for the messages in their handlers at_most=1s")
	assert.Contains(t, text, "Stopping: shutdown timeout passed with messages still in their handlers")
}
