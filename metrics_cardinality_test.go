package kafkaevents_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/delayedretry"
	"github.com/torix/kafkaevents/dlq"
	"github.com/torix/kafkaevents/health"
	"github.com/torix/kafkaevents/wire"
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
	started := time.Now()
	rn := start(t, env.baseConfig("forged"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Forged.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	}, kafkaevents.WithLogger(logs))

	// The lag gauge appears once the lag of the group's partitions is known.
	var before int
	require.Eventually(t, func() bool {
		mfs, err := rn.Stack.Gatherer().Gather()
		if err != nil {
			return false
		}
		before = seriesCount(mfs)
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
				{Key: []byte(wire.HeaderHandlerID), Value: []byte(fmt.Sprintf("forged-handler-%d", i))},
				{Key: []byte(wire.HeaderOriginalTopic), Value: []byte(fmt.Sprintf("forged-topic-%d", i))},
				{Key: []byte(wire.HeaderRetryCount), Value: []byte("1")},
				{Key: []byte(wire.HeaderRetryAfter), Value: []byte(time.Now().UTC().Format(wire.TimeFormat))},
			},
		})
	}
	require.NoError(t, raw.SendMessages(msgs))

	require.Eventually(t, func() bool { return rn.Stack.DLQStats().MessagesStored == forged },
		60*time.Second, 50*time.Millisecond, "the forged records reach the DLQ")
	after := countSeries(t, rn.Stack.Gatherer())
	t.Logf("series before: %d, after %d forged records: %d", before, forged, after)
	// One label value more, unknown, whose series exist from the first
	// record counted there: the nine retry metrics of a handler label and
	// the DLQ's stored series of its reason; 2 spare.
	assert.LessOrEqual(t, after, before+9+1+2, "the series count stays bounded")

	rs := rn.Stack.RetryStats()
	assert.Equal(t, int64(forged), rs.Handlers[delayedretry.UnknownHandler].Unroutable)
	assert.NotContains(t, rs.Handlers, "forged-handler-1")
	ds := rn.Stack.DLQStats()
	assert.Equal(t, int64(forged), ds.ByTopic[dlq.UnknownTopic])
	assert.NotContains(t, ds.ByTopic, "forged-topic-1")
	// The limiter allows one line at once and one per 10 s after it.
	allowed := 1 + int64(time.Since(started)/(10*time.Second))
	assert.LessOrEqual(t, logs.n.Load(), allowed+1, "the log line about unknown handlers is rate-limited (%d forged records)", forged)
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
	return seriesCount(mfs)
}

// seriesCount returns the number of series in mfs.
func seriesCount(mfs []*dto.MetricFamily) int {
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

// TestHandlerDurationCarriesTheTraceIDAsExemplar: a scrape in OpenMetrics
// shows the trace ID of the handled message's span on its bucket.
func TestHandlerDurationCarriesTheTraceIDAsExemplar(t *testing.T) {
	env := newEnv(t)
	topic := uniq("exemplar")
	env.createTopics(t, 1, topic)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	handled := make(chan struct{}, 1)
	rn := start(t, env.baseConfig("exemplar"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "Exemplar.handle", func(*message.Message) error {
			handled <- struct{}{}
			return nil
		})
		require.NoError(t, err)
	}, kafkaevents.WithTracerProvider(tp))
	_, err := rn.Stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: topic, Value: "x"})
	require.NoError(t, err)
	<-handled

	e := echo.New()
	require.NoError(t, health.Register(e, health.Config{Source: rn.Stack}))
	var body string
	require.Eventually(t, func() bool {
		req := httptest.NewRequest(http.MethodGet, "/kafka/metrics/prometheus", nil)
		req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		body = rec.Body.String()
		return strings.Contains(body, `kafkaevents_handler_duration_seconds_bucket{handler="Exemplar.handle",outcome="success"`) &&
			strings.Contains(body, `# {trace_id="`)
	}, 10*time.Second, 50*time.Millisecond, "no exemplar in:\n%s", body)
	// The process span ends, and reaches the exporter, just after the
	// metrics middleware observed the duration.
	assert.Eventually(t, func() bool {
		for _, s := range exp.GetSpans() {
			if strings.Contains(body, `trace_id="`+s.SpanContext.TraceID().String()+`"`) {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the exemplar is the trace ID of a span of the message")
}

// TestBrowseShowsAForgedReasonAsUnknown writes a DLQ record whose
// x-dlq-reason is not one the stack writes: the browse reports it as
// unknown and keeps the header as it is.
func TestBrowseShowsAForgedReasonAsUnknown(t *testing.T) {
	env := newEnv(t)
	topic := uniq("forgedreason")
	env.createTopics(t, 1, topic)
	rn := start(t, env.baseConfig("forgedreason"), func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "ForgedReason.handle", func(*message.Message) error { return nil })
		require.NoError(t, err)
	})
	raw, err := sarama.NewSyncProducer(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer raw.Close()
	_, _, err = raw.SendMessage(&sarama.ProducerMessage{
		Topic: rn.Stack.DLQTopic(), Value: sarama.StringEncoder("forged"),
		Headers: []sarama.RecordHeader{
			{Key: []byte(wire.HeaderOriginalTopic), Value: []byte(topic)},
			{Key: []byte(wire.HeaderDLQReason), Value: []byte("<script>alert(1)</script>")},
		},
	})
	require.NoError(t, err)
	page, err := rn.Stack.BrowseDLQ(t.Context(), topic, 10, 0)
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	assert.Equal(t, dlq.UnknownReason, page.Records[0].Reason)
	assert.Equal(t, "<script>alert(1)</script>", page.Records[0].Headers[wire.HeaderDLQReason])
}
