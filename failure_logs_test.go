package kafkaevents_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/correlation"
	"github.com/torix/kafkaevents/kafkatest"
)

// A retry scheduled and a record dead-lettered each write one line that
// names the handler, the topic, the attempt, the reason and the correlation
// ID: at INFO with a logger that has no warning level, as here.
func TestFailuresAreLoggedWithTheirCoordinates(t *testing.T) {
	logs := &lockedLogs{}
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("orders", "Orders.handle", func(*message.Message) error {
			return errors.New("stock service timed out")
		})
	}, kafkatest.Configure(func(cfg *kafkaevents.Config) { cfg.Retry.Attempts = 1 }),
		kafkatest.StackOptions(kafkaevents.WithLogger(logs)))

	h.SendRecord(kafkatest.Record{Topic: "orders", Key: "o-1", Value: "{}", Headers: map[string]string{correlation.Header: "corr-42"}})
	h.WaitDLQ("orders", 10*time.Second)

	find := func(msg string) watermill.LogFields {
		var found watermill.LogFields
		require.Eventually(t, func() bool {
			for _, m := range logs.info() {
				if m.Msg == msg {
					found = m.Fields
					return true
				}
			}
			return false
		}, 5*time.Second, 10*time.Millisecond, "no INFO line %q", msg)
		return found
	}
	retry := find("Retry scheduled")
	assert.Equal(t, "Orders.handle", retry["handler_id"])
	assert.Equal(t, h.Topic("orders"), retry["topic"])
	assert.Equal(t, 1, retry["attempt"])
	assert.Equal(t, "stock service timed out", retry["reason"])
	assert.Equal(t, "corr-42", retry["correlation_id"])
	assert.Equal(t, int64(0), retry["offset"], "the original record's offset")
	assert.Contains(t, retry, "partition")

	dead := find("Message stored in the DLQ")
	assert.Equal(t, "Orders.handle", dead["handler_id"])
	assert.Equal(t, h.Topic("orders"), dead["topic"])
	assert.Equal(t, 1, dead["retry_count"])
	assert.Equal(t, "retries-exhausted", dead["reason"])
	assert.Equal(t, "stock service timed out", dead["error"])
	assert.Equal(t, "corr-42", dead["correlation_id"])
	assert.Equal(t, int64(0), dead["offset"], "the original record's offset, not the DLQ record's")
	assert.Contains(t, dead, "dlq_offset")
	assert.Contains(t, dead, "dlq_partition")
}

// lockedLogs captures INFO lines; unlike watermill.CaptureLoggerAdapter,
// whose Captured hands out the map it appends to, it can be read while the
// stack logs.
type lockedLogs struct {
	mu     sync.Mutex
	lines  []watermill.CapturedMessage
	fields watermill.LogFields
	parent *lockedLogs
}

func (l *lockedLogs) root() *lockedLogs {
	if l.parent != nil {
		return l.parent
	}
	return l
}

func (l *lockedLogs) add(level watermill.LogLevel, msg string, fields watermill.LogFields) {
	r := l.root()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, watermill.CapturedMessage{Level: level, Msg: msg, Fields: l.fields.Add(fields)})
}

func (l *lockedLogs) info() []watermill.CapturedMessage {
	r := l.root()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []watermill.CapturedMessage
	for _, m := range r.lines {
		if m.Level == watermill.InfoLogLevel {
			out = append(out, m)
		}
	}
	return out
}

func (l *lockedLogs) Error(msg string, _ error, fields watermill.LogFields) {
	l.add(watermill.ErrorLogLevel, msg, fields)
}
func (l *lockedLogs) Info(msg string, fields watermill.LogFields) {
	l.add(watermill.InfoLogLevel, msg, fields)
}
func (l *lockedLogs) Debug(msg string, fields watermill.LogFields) {
	l.add(watermill.DebugLogLevel, msg, fields)
}
func (l *lockedLogs) Trace(msg string, fields watermill.LogFields) {
	l.add(watermill.TraceLogLevel, msg, fields)
}
func (l *lockedLogs) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &lockedLogs{fields: l.fields.Add(fields), parent: l.root()}
}

// With the default logger, or one of kafkaevents.NewSlogLogger, a retry
// scheduled and a record dead-lettered are logged at WARN, with the fields
// of the logger's With.
func TestFailuresAreLoggedAtWarn(t *testing.T) {
	var buf syncBuffer
	logger := kafkaevents.NewSlogLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	h := kafkatest.NewHarness(t, func(h *kafkatest.Harness) {
		h.AddHandler("orders", "Orders.handle", func(*message.Message) error {
			return errors.New("stock service timed out")
		})
	}, kafkatest.Configure(func(cfg *kafkaevents.Config) { cfg.Retry.Attempts = 1 }),
		kafkatest.StackOptions(kafkaevents.WithLogger(logger.With(watermill.LogFields{"replica": "r1"}))))

	h.SendRecord(kafkatest.Record{Topic: "orders", Key: "o-1", Value: "{}"})
	h.WaitDLQ("orders", 10*time.Second)

	levels := map[string]string{}
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(buf.String(), "\n") {
			var rec struct{ Level, Msg, Replica, Topic string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Replica == "r1" && rec.Topic == h.Topic("orders") {
				levels[rec.Msg] = rec.Level
			}
		}
		return levels["Retry scheduled"] != "" && levels["Message stored in the DLQ"] != ""
	}, 5*time.Second, 10*time.Millisecond, "lines: %s", &buf)
	assert.Equal(t, "WARN", levels["Retry scheduled"])
	assert.Equal(t, "WARN", levels["Message stored in the DLQ"])
}
