package kafkaevents_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/kafkatest"
)

// silentListener accepts TCP connections and never answers on them, like a
// listener that speaks another protocol than the one configured (SASL
// against a plaintext port, say) or a broker that hangs.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestNewContextEndsWhenItsContextIsDone cancels the context of NewContext
// (as a signal context is on SIGTERM) while it connects to a broker that
// never answers: it returns at once, with a log line saying what it was
// waiting for.
func TestNewContextEndsWhenItsContextIsDone(t *testing.T) {
	addr := silentListener(t)
	logs := &recordingLogger{}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	began := time.Now()
	_, err := kafkaevents.NewContext(ctx, kafkaevents.Config{Brokers: []string{addr}}, kafkaevents.WithLogger(logs))
	took := time.Since(began)
	t.Logf("NewContext returned %s after it began, %s after the cancel", took, took-300*time.Millisecond)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "connecting to the brokers")
	assert.Less(t, took, 5*time.Second)
	assert.Contains(t, logs.lines(), "Startup interrupted brokers="+addr+" waiting_for=connecting to the brokers")
}

// TestNewTimesOutWithTheLikelyCause: a SASL config against a listener that
// never answers fails after Config.StartupTimeout with an error that names
// the broker and the likely cause, and no password.
func TestNewTimesOutWithTheLikelyCause(t *testing.T) {
	addr := silentListener(t)
	cfg := kafkaevents.Config{
		Brokers:        []string{addr},
		StartupTimeout: time.Second,
		SASL:           kafkaevents.SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "marker-password"},
		TLS:            kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
	}
	began := time.Now()
	_, err := kafkaevents.New(cfg, kafkaevents.WithLogger(watermill.NopLogger{}))
	require.Error(t, err)
	assert.Less(t, time.Since(began), 5*time.Second)
	assert.True(t, errors.Is(err, kafkaevents.ErrStartupTimeout), "%v", err)
	assert.Contains(t, err.Error(), addr)
	assert.Contains(t, err.Error(), "KAFKA_STARTUP_TIMEOUT")
	assert.Contains(t, err.Error(), "SASL handshake got no answer: is this listener SASL?")
	assert.NotContains(t, err.Error(), "marker-password")
}

// recordingLogger keeps the log lines as "msg key=value ...", keys sorted.
type recordingLogger struct {
	mu  sync.Mutex
	out []string
}

func (l *recordingLogger) add(msg string, err error, fields watermill.LogFields) {
	var b strings.Builder
	b.WriteString(msg)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, fields[k])
	}
	if err != nil {
		b.WriteString(" err=" + err.Error())
	}
	l.mu.Lock()
	l.out = append(l.out, b.String())
	l.mu.Unlock()
}

func (l *recordingLogger) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.out...)
}

func (l *recordingLogger) Error(msg string, err error, f watermill.LogFields) { l.add(msg, err, f) }
func (l *recordingLogger) Info(msg string, f watermill.LogFields)             { l.add(msg, nil, f) }
func (l *recordingLogger) Debug(msg string, f watermill.LogFields)            { l.add(msg, nil, f) }
func (l *recordingLogger) Trace(msg string, f watermill.LogFields)            { l.add(msg, nil, f) }
func (l *recordingLogger) With(watermill.LogFields) watermill.LoggerAdapter   { return l }

// TestProvisioningEndsWhenTheContextIsDone: the broker answers, but holds
// the creation of the retry and DLQ topics; cancelling the context given to
// NewContext ends the router's start within 5 s, with a log line saying
// what it was waiting for.
func TestProvisioningEndsWhenTheContextIsDone(t *testing.T) {
	topic := uniq("provision-hang")
	broker := kafkatest.New(t, kafkatest.Topics(topic))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c := broker.Cluster()
	c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})

	logs := &recordingLogger{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stack, err := kafkaevents.NewContext(ctx, kafkaevents.Config{ClientID: uniq("provision"), Brokers: broker.Addrs()}, kafkaevents.WithLogger(logs))
	require.NoError(t, err)
	defer stack.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	require.NoError(t, err)
	stack.Install(router)
	_, err = stack.AddHandler(router, topic, "Provision.handle", func(*message.Message) error { return nil })
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	time.AfterFunc(300*time.Millisecond, cancel)
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "creating the retry and DLQ topics")
	case <-time.After(5 * time.Second):
		t.Fatal("the router's start did not end within 5 s of the cancel")
	}
	assert.Contains(t, strings.Join(logs.lines(), "\n"), "Startup interrupted brokers="+broker.Addrs()[0]+" waiting_for=creating the retry and DLQ topics")
}
