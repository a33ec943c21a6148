package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents/wire"
)

// startService runs the reference service on a free port. On the embedded
// broker (KAFKA_BROKERS unset) it starts its own; on real Kafka the service
// gets a unique client ID so tests do not share topics or groups.
func startService(t *testing.T, env map[string]string) *Service {
	t.Helper()
	env["PORT"] = "0"
	env["HOST"] = "127.0.0.1"
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		env["KAFKA_BROKERS"] = b
		id := "orders-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
		env["KAFKA_CLIENT_ID"] = id
		env["KAFKA_CONSUMER_GROUP"] = id + "-group"
		env["KAFKA_FROM_BEGINNING"] = "true"
	}
	env["KAFKA_RETRY_BASE_DELAY"] = "100"
	env["KAFKA_RETRY_MAX_DELAY"] = "400ms"
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := Start(t.Context(), Options{Lookup: lookup, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	return svc
}

func post(t *testing.T, url, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// readTopic returns the records of topic whose key is in keys, waiting until
// there are n.
func readTopic(t *testing.T, brokers []string, topic string, n int, keys ...string) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	c, err := sarama.NewConsumer(brokers, cfg)
	require.NoError(t, err)
	defer c.Close()
	parts, err := c.Partitions(topic)
	require.NoError(t, err)
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := make(chan *sarama.ConsumerMessage, 1000)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		require.NoError(t, err)
		defer pc.Close()
		go func() {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					if want[string(m.Key)] {
						out <- m
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	for len(got) < n {
		select {
		case m := <-out:
			got = append(got, m)
		case <-ctx.Done():
			t.Fatalf("%s: want %d records with keys %v, got %d", topic, n, keys, len(got))
		}
	}
	return got
}

func TestOrdersWalkthrough(t *testing.T) {
	svc := startService(t, map[string]string{"KAFKA_ADMIN_TOKEN": "test-token"})
	suffix := time.Now().Format("150405.000")

	// A good order is processed and order.processed carries its correlation ID.
	code, res := post(t, svc.URL+"/orders", `{"orderId":"ok-`+suffix+`","amount":42}`, "x-correlation-id", "corr-walkthrough-1")
	require.Equal(t, http.StatusAccepted, code, res)
	assert.Equal(t, "corr-walkthrough-1", res["correlationId"])
	assert.Contains(t, res, "partition")
	assert.Contains(t, res, "offset")
	processed := readTopic(t, svc.Brokers, TopicOrderProcessed, 1, "ok-"+suffix)
	hdr := map[string]string{}
	for _, h := range processed[0].Headers {
		hdr[string(h.Key)] = string(h.Value)
	}
	assert.Equal(t, "corr-walkthrough-1", hdr[wire.HeaderCorrelationID])

	// failTimes 2: two retries, then processed; never in the DLQ.
	code, _ = post(t, svc.URL+"/orders", `{"orderId":"ft-`+suffix+`","failTimes":2}`)
	require.Equal(t, http.StatusAccepted, code)
	readTopic(t, svc.Brokers, TopicOrderProcessed, 1, "ft-"+suffix)

	// shouldFail: retries exhausted, DLQ; permanent: straight to the DLQ;
	// not JSON: undecodable.
	post(t, svc.URL+"/orders", `{"orderId":"sf-`+suffix+`","shouldFail":true}`)
	post(t, svc.URL+"/orders", `{"orderId":"pm-`+suffix+`","permanent":true}`)
	raw, err := sarama.NewSyncProducer(svc.Brokers, func() *sarama.Config {
		c := sarama.NewConfig()
		c.Producer.Return.Successes = true
		return c
	}())
	require.NoError(t, err)
	defer raw.Close()
	_, _, err = raw.SendMessage(&sarama.ProducerMessage{Topic: TopicOrderCreated, Key: sarama.StringEncoder("nj-" + suffix), Value: sarama.StringEncoder("not json")})
	require.NoError(t, err)
	_, _, err = raw.SendMessage(&sarama.ProducerMessage{Topic: TopicUserRegistered, Key: sarama.StringEncoder("u-" + suffix), Value: sarama.StringEncoder("<xml/>")})
	require.NoError(t, err)

	dlqTopic := svc.Stack.DLQTopic()
	recs := readTopic(t, svc.Brokers, dlqTopic, 4, "sf-"+suffix, "pm-"+suffix, "nj-"+suffix, "u-"+suffix)
	reasons := map[string]string{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if string(h.Key) == wire.HeaderDLQReason {
				reasons[string(r.Key)] = string(h.Value)
			}
		}
	}
	assert.Equal(t, map[string]string{
		"sf-" + suffix: "retries-exhausted", "pm-" + suffix: "permanent",
		"nj-" + suffix: "undecodable", "u-" + suffix: "undecodable",
	}, reasons)

	m := getJSON(t, svc.URL+"/kafka/metrics")
	retry := m["retry"].(map[string]any)
	assert.GreaterOrEqual(t, retry["scheduled"].(float64), float64(5), "2 for failTimes, 3 for shouldFail")
	dlqStats := m["dlq"].(map[string]any)
	assert.GreaterOrEqual(t, dlqStats["messagesStored"].(float64), float64(4))

	// Reprocess needs the admin token; the run dispatches the DLQ records
	// of order.created again.
	code, _ = post(t, svc.URL+"/kafka/dlq/reprocess", `{"topic":"order.created"}`)
	assert.Equal(t, http.StatusUnauthorized, code)
	code, res = post(t, svc.URL+"/kafka/dlq/reprocess", `{"topic":"order.created"}`, "authorization", "Bearer test-token")
	require.Equal(t, http.StatusAccepted, code, res)
	require.Eventually(t, func() bool {
		st := getJSON(t, svc.URL+"/kafka/dlq/status")
		last, _ := st["last"].(map[string]any)
		run, ok := last["order.created"].(map[string]any)
		return ok && run["state"] == "completed"
	}, 30*time.Second, 50*time.Millisecond)

	for _, path := range []string{"/kafka/health", "/kafka/health/live", "/kafka/health/ready", "/kafka/handlers"} {
		resp, err := http.Get(svc.URL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		if path == "/kafka/handlers" {
			assert.True(t, bytes.Contains(body, []byte(HandlerOrderCreated)))
			assert.True(t, bytes.Contains(body, []byte(HandlerUserRegistered)))
		}
	}
	code, _ = post(t, svc.URL+"/orders", `{"amount":1}`)
	assert.Equal(t, http.StatusBadRequest, code, "orderId is required")

	// The operator console is served, and its URL printed at start.
	assert.Equal(t, svc.URL+"/kafka/ui/", svc.ConsoleURL())
	assert.Contains(t, strings.Join(svc.TryItOut(), "\n"), "Operator console: "+svc.URL+"/kafka/ui/")
	resp, err := http.Get(svc.ConsoleURL())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `<script type="module" src="app.js?v=`)
}

func TestDLQCanBeTurnedOff(t *testing.T) {
	svc := startService(t, map[string]string{"KAFKA_DLQ_ENABLED": "false"})
	assert.False(t, svc.Stack.DLQEnabled())
	st := getJSON(t, svc.URL+"/kafka/health")
	assert.Equal(t, false, st["components"].(map[string]any)["dlq"].(map[string]any)["enabled"])
}

// A configuration error prints one bad variable per line, not one quoted
// line with \n in it.
func TestConfigErrorOnePerLine(t *testing.T) {
	env := map[string]string{"KAFKA_BROKERS": "localhost:9092;localhost:9093", "KAFKA_RETRY_BASE_DELAY": "5"}
	err := run(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	require.Error(t, err)
	var out bytes.Buffer
	printError(&out, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 3, out.String())
	assert.NotContains(t, out.String(), `\n`)
	assert.Contains(t, out.String(), "\n  KAFKA_RETRY_BASE_DELAY=\"5\"")
}

// KAFKA_CONSUMER_CONCURRENCY sets how many records of a partition each
// handler of the service handles at once; orders still reach their outcome.
func TestConcurrencyFromTheEnvironment(t *testing.T) {
	svc := startService(t, map[string]string{"KAFKA_CONSUMER_CONCURRENCY": "16"})
	for _, h := range svc.Stack.Handlers() {
		assert.Equal(t, 16, h.Options.Concurrency, h.ID)
		assert.Equal(t, "key", h.Options.Ordering, h.ID)
	}
	id := "conc-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	code, _ := post(t, svc.URL+"/orders", `{"orderId":"`+id+`","amount":1}`)
	require.Equal(t, http.StatusAccepted, code)
	got := readTopic(t, svc.Brokers, TopicOrderProcessed, 1, id)
	require.Len(t, got, 1)
}

// TestOrdersKeepKeyOrder: with KAFKA_RETRY_KEEP_KEY_ORDER=true, three orders
// of one customer (POST /orders?key=), the first failing twice, are
// processed in the order they were posted; without it, the first comes
// last.
func TestOrdersKeepKeyOrder(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			svc := startService(t, map[string]string{"KAFKA_RETRY_KEEP_KEY_ORDER": fmt.Sprint(keep)})
			suffix := strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
			key := "customer-" + suffix
			for i, body := range []string{`{"orderId":"c-1-%s","failTimes":2}`, `{"orderId":"c-2-%s"}`, `{"orderId":"c-3-%s"}`} {
				code, res := post(t, svc.URL+"/orders?key="+key, fmt.Sprintf(body, suffix))
				require.Equal(t, http.StatusAccepted, code)
				assert.Equal(t, key, res["key"], "order %d keyed by the customer", i+1)
			}
			ids := []string{"c-1-" + suffix, "c-2-" + suffix, "c-3-" + suffix}
			recs := readTopic(t, svc.Brokers, TopicOrderProcessed, 3, ids...)
			at := map[string]string{}
			for _, m := range recs {
				var v struct {
					ProcessedAt string `json:"processedAt"`
				}
				require.NoError(t, json.Unmarshal(m.Value, &v))
				at[string(m.Key)] = v.ProcessedAt
			}
			inOrder := at[ids[0]] < at[ids[1]] && at[ids[1]] < at[ids[2]]
			assert.Equal(t, keep, inOrder, "processed at %v", at)
		})
	}
}
