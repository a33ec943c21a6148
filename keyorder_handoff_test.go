package kafkaevents_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/torix/kafkaevents"
)

// TestKeepKeyOrderPendingHeadAfterAKill starts a service on the key-order
// state a killed instance leaves (docs/wire-contract.md#key-order-state):
// K-2 and K-3 set aside; K-2 delivered from the state topic, failed, and
// parked its key behind itself with a head that carries it (pending),
// then:
//   - killed before K-2's retry record was acknowledged: no marker; the new
//     owner delivers K-2 again, then K-3;
//   - killed after it: a marker names the head; K-2 waits for its retry, and
//     K-3 behind it;
//   - the retry succeeded on another instance, which released the head
//     before the marker was written: K-3 goes on, K-2 is not delivered
//     again, and the owner drops the marker.
func TestKeepKeyOrderPendingHeadAfterAKill(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  []string // what follows the pending head: "marker", "release"
		handed []string
		parked bool
	}{
		{name: "no marker", handed: []string{"K:2", "K:3"}},
		{name: "marker", after: []string{"marker"}, parked: true},
		{name: "released before the marker", after: []string{"release", "marker"}, handed: []string{"K:3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			topic := uniq("keep-pending")
			env.createTopics(t, 1, topic)
			cfg := env.keyOrderConfig("keep-pending")
			state := cfg.ServiceName + ".parked"
			env.createTopics(t, 1, state)

			prod, err := sarama.NewSyncProducerFromClient(env.client(t))
			require.NoError(t, err)
			defer prod.Close()
			key := func(off int64, marker bool) sarama.Encoder {
				k := map[string]any{"handler": "Orders.keep", "topic": topic, "partition": 0, "offset": off, "key": "K"}
				if marker {
					k["handedOff"] = true
				}
				b, _ := json.Marshal(k)
				return sarama.ByteEncoder(b)
			}
			write := func(k sarama.Encoder, value sarama.Encoder, headers ...string) int64 {
				t.Helper()
				hs := []sarama.RecordHeader{{Key: []byte("x-parked-at"), Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))}}
				for i := 0; i < len(headers); i += 2 {
					hs = append(hs, sarama.RecordHeader{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
				}
				_, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: state, Key: k, Value: value, Headers: hs})
				require.NoError(t, err)
				return off
			}
			write(key(1, false), sarama.StringEncoder("K:2"), "x-parked-kind", "aside", "_watermill_message_uuid", "u-2")
			write(key(2, false), sarama.StringEncoder("K:3"), "x-parked-kind", "aside", "_watermill_message_uuid", "u-3")
			head := write(key(1, false), sarama.StringEncoder("K:2"), "x-parked-kind", "head", "x-parked-reason", "retry",
				"x-parked-handoff", "pending", "_watermill_message_uuid", "u-2")
			for _, step := range tc.after {
				switch step {
				case "marker":
					write(key(1, true), sarama.StringEncoder(strconv.FormatInt(head, 10)), "x-parked-kind", "handed-off")
				case "release":
					write(key(1, false), nil, "x-parked-kind", "released")
				}
			}

			f := newFirstSuccess()
			var calls []string
			rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
				_, err := s.AddHandler(r, topic, "Orders.keep", func(msg *message.Message) error {
					f.mu.Lock()
					calls = append(calls, string(msg.Payload))
					f.mu.Unlock()
					return f.handle(msg)
				})
				require.NoError(t, err)
			})
			if len(tc.handed) > 0 {
				require.Eventually(t, func() bool { return f.count() == len(tc.handed) }, 30*time.Second, 20*time.Millisecond)
			}
			time.Sleep(time.Second)
			f.mu.Lock()
			assert.Equal(t, tc.handed, calls, "deliveries, in order")
			f.mu.Unlock()
			f.assertInOrder(t)
			keys, err := rn.Stack.ParkedKeys(t.Context(), 0)
			require.NoError(t, err)
			if tc.parked {
				require.Len(t, keys, 1, "K waits behind K-2, whose retry was acknowledged")
				assert.Equal(t, int64(1), keys[0].HeadOffset)
				assert.Equal(t, 1, keys[0].SetAside)
			} else {
				assert.Empty(t, keys, "no key left parked")
			}
			if tc.name == "released before the marker" {
				c := env.collect(t, state)
				c.WaitFor(t, 1, 10*time.Second, func(r record) bool {
					return strings.Contains(r.Key, `"handedOff":true`) && r.Value == ""
				}) // the marker of a released head is dropped
			}
		})
	}
}
