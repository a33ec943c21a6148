package health_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
)

// call sends an admin request to the service and decodes its JSON answer
// into out (when not nil).
func call(t *testing.T, svc *consoleService, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, svc.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+uiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return resp.StatusCode
}

// storeFailures sends one record per payload while the handler fails
// permanently, and returns their DLQ records by payload.
func storeFailures(t *testing.T, svc *consoleService, payloads ...string) map[string]dlq.BrowsedRecord {
	t.Helper()
	before := svc.stack.DLQStats().MessagesStored
	for i, p := range payloads {
		_, err := svc.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: svc.topic, Key: fmt.Sprint("k", i), Value: []byte(p)})
		require.NoError(t, err)
	}
	want := before + int64(len(payloads))
	require.Eventually(t, func() bool { return svc.stack.DLQStats().MessagesStored == want }, 30*time.Second, 10*time.Millisecond)
	var page dlq.Page
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodGet, "/kafka/dlq/records?limit=500&topic="+svc.topic, &page))
	out := map[string]dlq.BrowsedRecord{}
	for _, r := range page.Records {
		out[r.Preview] = r
	}
	return out
}

func TestReprocessRecordHandsItToItsHandlerOnce(t *testing.T) {
	svc := startConsoleService(t)
	recs := storeFailures(t, svc, `{"n":1}`, `{"n":2}`)
	first, second := recs[`{"n":1}`], recs[`{"n":2}`]
	require.Equal(t, 1, svc.handled(`{"n":1}`))
	end := topicEnd(t, svc.stack, svc.topic)
	path := fmt.Sprintf("/kafka/dlq/records/%d/%d/reprocess", first.Partition, first.Offset)

	// Failing again: the record takes the normal path back to the DLQ.
	var res dlq.RecordResult
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodPost, path, &res))
	assert.Equal(t, dlq.OutcomeFailed, res.Outcome)
	assert.Equal(t, 2, svc.handled(`{"n":1}`))
	require.Eventually(t, func() bool { return svc.stack.DLQStats().MessagesStored == 3 }, 30*time.Second, 10*time.Millisecond)

	// Fixed: the handler sees it exactly once more; the other record is not
	// touched and nothing is republished to the original topic.
	svc.failing.Store(false)
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodPost, path, &res))
	assert.Equal(t, dlq.RecordResult{
		Partition: first.Partition, Offset: first.Offset, Topic: svc.topic, HandlerID: uiHandler, Outcome: dlq.OutcomeReprocessed,
		StartedAt: res.StartedAt, FinishedAt: res.FinishedAt,
	}, res)
	assert.Equal(t, 3, svc.handled(`{"n":1}`))
	assert.Equal(t, 1, svc.handled(`{"n":2}`))
	assert.Equal(t, end, topicEnd(t, svc.stack, svc.topic), "nothing was republished to the original topic")
	assert.Equal(t, int64(1), svc.stack.DLQStats().MessagesReprocessed)

	// The record carried its reprocess count: the DLQ record of its second
	// failure says 1.
	var page dlq.Page
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodGet, "/kafka/dlq/records?topic="+svc.topic+"&limit=10", &page))
	counts := map[string]int{}
	for _, r := range page.Records {
		counts[fmt.Sprint(r.Preview, "#", r.ReprocessCount)]++
	}
	assert.Equal(t, map[string]int{`{"n":1}#0`: 1, `{"n":1}#1`: 1, `{"n":2}#0`: 1}, counts)

	// Out of range, unknown partition: 404.
	for _, p := range []string{
		fmt.Sprintf("/kafka/dlq/records/%d/%d/reprocess", second.Partition, 1000),
		"/kafka/dlq/records/99/0/reprocess",
	} {
		assert.Equal(t, http.StatusNotFound, call(t, svc, http.MethodPost, p, nil), p)
	}
}

func TestSearchAndDetailOnTheEmbeddedBroker(t *testing.T) {
	svc := startConsoleService(t)
	recs := storeFailures(t, svc, `{"a":1}`, "plain text", "\x00\x01binary")
	require.Len(t, recs, 3)

	count := func(query string) int {
		var page dlq.Page
		require.Equal(t, http.StatusOK, call(t, svc, http.MethodGet, "/kafka/dlq/records?"+query, &page), query)
		return page.Total
	}
	assert.Equal(t, 3, count(""))
	assert.Equal(t, 3, count("reason=permanent&handler="+url.QueryEscape(uiHandler)))
	assert.Equal(t, 0, count("reason=retries-exhausted"))
	assert.Equal(t, 0, count("handler=Other.handle"))
	assert.Equal(t, 3, count("pending=true&topic="+svc.topic))

	// A completed run moves the group past them: nothing is pending.
	svc.failing.Store(false)
	p, err := svc.stack.Reprocessor().Reprocess(t.Context(), dlq.ReprocessOptions{Topic: svc.topic})
	require.NoError(t, err)
	require.Equal(t, int64(3), p.Reprocessed)
	assert.Equal(t, 0, count("pending=true&topic="+svc.topic))
	assert.Equal(t, 3, count("topic="+svc.topic), "the records stay in the DLQ")

	bin := recs["\x00\x01binary"]
	var d dlq.Detail
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodGet, fmt.Sprintf("/kafka/dlq/records/%d/%d", bin.Partition, bin.Offset), &d))
	assert.Equal(t, []byte("\x00\x01binary"), d.Payload)
	assert.Equal(t, svc.topic, d.OriginalTopic)
	assert.NotEmpty(t, d.CorrelationID)
	assert.Len(t, d.TraceID, 32)
	assert.True(t, strings.HasPrefix(d.Headers["traceparent"], "00-"+d.TraceID+"-"))
	assert.Empty(t, d.Preview, "the detail carries the payload, not the preview")
}

func TestRetryLanesShowBacklogAndOldestDue(t *testing.T) {
	svc := startConsoleServiceWith(t, kafkaevents.RetryConfig{BaseDelay: time.Hour, MaxDelay: time.Hour, Attempts: 1})
	svc.transient.Store(true)
	sent := time.Now()
	_, err := svc.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: svc.topic, Key: "k", Value: []byte(`{"late":true}`)})
	require.NoError(t, err)

	type lane struct {
		Topic     string    `json:"topic"`
		Backlog   int64     `json:"backlog"`
		OldestDue time.Time `json:"oldestDue"`
	}
	var lanes []lane
	require.Eventually(t, func() bool {
		var m struct {
			Retry struct {
				Lanes      []lane `json:"lanes"`
				LanesError string `json:"lanesError"`
			} `json:"retry"`
		}
		if call(t, svc, http.MethodGet, "/kafka/metrics", &m) != http.StatusOK || m.Retry.LanesError != "" {
			return false
		}
		lanes = m.Retry.Lanes
		return len(lanes) == 1 && lanes[0].Backlog == 1 && !lanes[0].OldestDue.IsZero()
	}, 30*time.Second, 20*time.Millisecond, "lanes: %+v", lanes)
	assert.Equal(t, svc.service+".retry.3600s", lanes[0].Topic)
	assert.WithinRange(t, lanes[0].OldestDue, sent.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))
}
