package health_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/dlq"
)

// TestParkedKeysOverTheAPI: with KeepKeyOrder, a dead-lettered head holds
// its key. GET /kafka/parked lists it (the admin token is required),
// reprocessing the head from the DLQ hands it to its handler before the
// record set aside behind it, and POST /kafka/parked/release lets another
// key go, audited.
func TestParkedKeysOverTheAPI(t *testing.T) {
	svc := startConsoleServiceWith(t, kafkaevents.RetryConfig{BaseDelay: 100 * time.Millisecond, KeepKeyOrder: true})
	send := func(key, value string) {
		_, err := svc.stack.Producer().Send(t.Context(), kafkaevents.Message{Topic: svc.topic, Key: key, Value: []byte(value)})
		require.NoError(t, err)
	}
	send("A", "A-1")
	send("A", "A-2")
	send("B", "B-1")
	send("B", "B-2")
	var parked struct {
		Keys []kafkaevents.ParkedKey `json:"keys"`
	}
	require.Eventually(t, func() bool {
		return call(t, svc, http.MethodGet, "/kafka/parked", &parked) == http.StatusOK && len(parked.Keys) == 2 &&
			parked.Keys[0].SetAside+parked.Keys[1].SetAside == 2
	}, 30*time.Second, 50*time.Millisecond, "both keys parked, one record set aside behind each")
	assert.Zero(t, svc.handled("A-2")+svc.handled("B-2"), "records behind a held dead-lettered head ran")
	assert.Equal(t, "dead-lettered", parked.Keys[0].Reason)

	resp, err := http.Get(svc.url + "/kafka/parked")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the parked keys without the admin token")
	resp, err = http.Post(svc.url+"/kafka/parked/release", "application/json", strings.NewReader(`{"handlerId":"x","topic":"t","partition":0,"key":"A"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a release without the admin token")

	svc.failing.Store(false)
	// A: its head reprocessed from the DLQ, then the record behind it.
	// The key is parked before its DLQ record's transaction commits: the
	// record shows in the DLQ a moment later.
	var head dlq.BrowsedRecord
	require.Eventually(t, func() bool {
		var page dlq.Page
		if call(t, svc, http.MethodGet, "/kafka/dlq/records?limit=10&topic="+svc.topic, &page) != http.StatusOK {
			return false
		}
		for _, r := range page.Records {
			if r.Preview == "A-1" {
				head = r
			}
		}
		return head.Preview == "A-1"
	}, 30*time.Second, 20*time.Millisecond, "the head A-1 in the DLQ")
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodPost, "/kafka/dlq/records/"+strconv.Itoa(int(head.Partition))+"/"+strconv.FormatInt(head.Offset, 10)+"/reprocess", nil))
	require.Eventually(t, func() bool { return svc.handled("A-2") == 1 }, 30*time.Second, 20*time.Millisecond, "A-2 after its head")

	// B: released by an operator; B-1 stays in the DLQ, B-2 runs.
	var b kafkaevents.ParkedKey
	for _, k := range parked.Keys {
		if k.Key == "B" {
			b = k
		}
	}
	body := `{"handlerId":"` + b.HandlerID + `","topic":"` + b.Topic + `","partition":` + strconv.Itoa(int(b.Partition)) + `,"key":"B"}`
	require.Equal(t, http.StatusOK, postJSON(t, svc, "/kafka/parked/release", body))
	require.Eventually(t, func() bool { return svc.handled("B-2") == 1 }, 30*time.Second, 20*time.Millisecond, "B-2 after the release")
	assert.Equal(t, 1, svc.handled("B-1"), "the released head is not handled again")
	require.Equal(t, http.StatusOK, call(t, svc, http.MethodGet, "/kafka/parked", &parked))
	assert.Empty(t, parked.Keys)
	found := false
	for _, l := range svc.audit.all() {
		if strings.Contains(l, `"action":"keys.release"`) && strings.Contains(l, "key=B") && strings.Contains(l, `"result":"ok"`) {
			found = true
		}
	}
	assert.True(t, found, "the release is audited: %v", svc.audit.all())
	assert.Equal(t, http.StatusNotFound, postJSON(t, svc, "/kafka/parked/release", body), "releasing a key that is not parked")
}

// postJSON sends an admin POST with a JSON body and returns the status.
func postJSON(t *testing.T, svc *consoleService, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, svc.url+path, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+uiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}
