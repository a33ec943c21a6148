package kafkaevents_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/internal/txn"
	"github.com/torix/kafkaevents/kafkatest"
	"github.com/torix/kafkaevents/wire"
)

// TestExactlyOnceHandoffsCarryEveryRecordOnce: with exactly-once hand-offs,
// records that always fail go main → lane → lane → DLQ, each once, and
// the main and retry groups' offsets reach the end of their topics.
func TestExactlyOnceHandoffsCarryEveryRecordOnce(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("eos")
	topic := uniq("eos")
	env.createTopics(t, 2, topic)
	cfg.Producer.ExactlyOnceHandoffs = kafkaevents.Bool(true)
	cfg.Retry.Attempts = 2
	const n = 200
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "EOS.fail", func(*message.Message) error {
			return errors.New("always fails")
		}, kafkaevents.WithConcurrency(8))
		require.NoError(t, err)
	})
	p, err := sarama.NewSyncProducerFromClient(env.client(t))
	require.NoError(t, err)
	for i := range n {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 7)), Value: sarama.StringEncoder(fmt.Sprintf("r-%d", i))})
		require.NoError(t, err)
	}
	col := env.collectIsolated(t, sarama.ReadCommitted, append(rn.Stack.RetryTopics(), rn.Stack.DLQTopic())...)
	dlq := col.WaitFor(t, n, 60*time.Second, onTopic(rn.Stack.DLQTopic()))
	time.Sleep(500 * time.Millisecond)
	seen := map[string]int{}
	for _, r := range col.Records(nil) {
		seen[r.Topic+" "+r.Value]++
	}
	for k, c := range seen {
		assert.Equal(t, 1, c, "copies of %s", k)
	}
	assert.Len(t, dlq, n)
	// Two retries and a DLQ record per record, each in a committed
	// transaction.
	st := rn.Stack.HandoffTransactions()
	require.NotNil(t, st)
	assert.Equal(t, int64(3*n), st.Records, "hand-off records committed")
	assert.Positive(t, st.Committed)
	assert.Empty(t, st.Aborted)
	mfs, err := rn.Stack.Gatherer().Gather()
	require.NoError(t, err)
	var committed float64
	for _, mf := range mfs {
		if mf.GetName() == "kafkaevents_handoff_transactions_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "committed" {
					committed = m.GetCounter().GetValue()
				}
			}
		}
	}
	assert.InDelta(t, float64(st.Committed), committed, 2, "Prometheus counts the committed transactions")
	admin, err := sarama.NewClusterAdminFromClient(env.client(t))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return committedSum(admin, cfg.Consumer.GroupID, topic, 2) == n
	}, 20*time.Second, 50*time.Millisecond, "main group's committed offsets")
	// The transaction markers at the ends of the lanes and of the DLQ are
	// no backlog, and a browse of the DLQ does not wait for them.
	require.Eventually(t, func() bool {
		lanes, err := rn.Stack.RetryLanes(t.Context())
		if err != nil {
			return false
		}
		for _, l := range lanes {
			if l.Backlog != 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "retry lanes drained")
	page, err := rn.Stack.BrowseDLQ(t.Context(), topic, 10, 0)
	require.NoError(t, err)
	assert.Equal(t, n, page.Total)
}

// committedSum returns the sum of the committed offsets of the first
// partitions of topic for group, -1 on an error or when one has none.
func committedSum(admin sarama.ClusterAdmin, group, topic string, partitions int32) int64 {
	parts := make([]int32, partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range parts {
		b := offsets.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError || b.Offset < 0 {
			return -1
		}
		sum += b.Offset
	}
	return sum
}

// TestZombieCannotCommitAHandoff: a hand-off transaction that carries the
// offsets of a group member the group has moved on from (it left, or the
// group rebalanced since its generation) is aborted: its record is never
// visible to a read_committed reader and the committed offset stays.
func TestZombieCannotCommitAHandoff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		moveOn func(t *testing.T, env *testEnv, group, topic string, zombie sarama.ConsumerGroup)
	}{
		{name: "member left", moveOn: func(t *testing.T, _ *testEnv, _, _ string, zombie sarama.ConsumerGroup) {
			require.NoError(t, zombie.Close())
		}},
		{name: "group rebalanced", moveOn: func(t *testing.T, env *testEnv, group, topic string, _ sarama.ConsumerGroup) {
			other := joinGroup(t, env, group, topic)
			<-other.claimed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			topic, out, group := uniq("zombie-in"), uniq("zombie-out"), uniq("zombie-group")
			// Two partitions: after the rebalance each member has a claim.
			env.createTopics(t, 2, topic)
			env.createTopics(t, 1, out)
			zombie := joinGroup(t, env, group, topic)
			meta := <-zombie.claimed
			tc.moveOn(t, env, group, topic, zombie.group)

			sc := env.saramaConfig()
			sc.Producer.Idempotent = true
			sc.Producer.RequiredAcks = sarama.WaitForAll
			sc.Net.MaxOpenRequests = 1
			sc.Producer.Transaction.ID = uniq("zombie-txn")
			sc.Producer.Return.Errors = true
			client, err := sarama.NewClient(env.Brokers, sc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = client.Close() })
			var outcomes []txn.Outcome
			c, err := txn.New(txn.Config{Client: client, Observe: func(o txn.Outcome) { outcomes = append(outcomes, o) }})
			require.NoError(t, err)
			require.NoError(t, c.Start())
			c.AddSource(func() []txn.Commit {
				return []txn.Commit{{Member: meta, Topic: topic, Partition: 0, Offset: 5}}
			})
			answer := make(chan error, 1)
			c.Send(&sarama.ProducerMessage{Topic: out, Value: sarama.StringEncoder("from a zombie")}, nil, func(err error) { answer <- err })
			require.Error(t, <-answer, "the zombie's transaction must fail")
			require.NoError(t, c.Close())
			require.NotEmpty(t, outcomes)
			assert.Equal(t, "offsets", outcomes[0].Reason, "abort reason: %v", outcomes[0].Err)

			admin, err := sarama.NewClusterAdminFromClient(env.client(t))
			require.NoError(t, err)
			assert.NotEqual(t, int64(5), committedOffsetNow(admin, group, topic), "the zombie's offset was committed")
			// A marker record after the aborted one: once a read_committed
			// reader reaches it, it has passed everything before.
			p, err := sarama.NewSyncProducerFromClient(env.client(t))
			require.NoError(t, err)
			_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: out, Value: sarama.StringEncoder("marker")})
			require.NoError(t, err)
			col := env.collectIsolated(t, sarama.ReadCommitted, out)
			got := col.WaitFor(t, 1, 30*time.Second, func(r record) bool { return r.Value == "marker" })
			assert.Len(t, col.Records(nil), 1, "records visible to read_committed: %v", col.Records(nil))

			// Before the marker record: the aborted record and its abort
			// marker, which no read_committed consumer delivers.
			rc := env.saramaConfig()
			rc.Consumer.IsolationLevel = sarama.ReadCommitted
			reader, err := sarama.NewClient(env.Brokers, rc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = reader.Close() })
			more, err := txn.Deliverable(reader, out, 0, 0, got[0].Offset)
			require.NoError(t, err)
			assert.False(t, more, "offsets 0..%d hold only an aborted transaction", got[0].Offset-1)
			more, err = txn.Deliverable(reader, out, 0, 0, got[0].Offset+1)
			require.NoError(t, err)
			assert.True(t, more, "offset %d is a record", got[0].Offset)
		})
	}
}

// member is a consumer group member that reports the metadata of each
// claim it gets and holds it until the test ends.
type member struct {
	group   sarama.ConsumerGroup
	claimed chan *sarama.ConsumerGroupMetadata
}

func joinGroup(t *testing.T, env *testEnv, group, topic string) *member {
	t.Helper()
	sc := env.saramaConfig()
	sc.Consumer.Group.Session.Timeout = 6 * time.Second
	sc.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	g, err := sarama.NewConsumerGroup(env.Brokers, group, sc)
	require.NoError(t, err)
	m := &member{group: g, claimed: make(chan *sarama.ConsumerGroupMetadata, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, holdingHandler{m: m, group: group}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = g.Close()
		<-done
	})
	return m
}

// holdingHandler reports each session's metadata once it has a claim, and
// holds the claim until the session ends.
type holdingHandler struct {
	m     *member
	group string
}

func (h holdingHandler) Setup(sess sarama.ConsumerGroupSession) error {
	if len(sess.Claims()) > 0 {
		h.m.claimed <- sarama.NewConsumerGroupMetadataFromSession(sess, h.group, nil)
	}
	return nil
}
func (holdingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (holdingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, _ sarama.ConsumerGroupClaim) error {
	<-sess.Context().Done()
	return nil
}

// TestDLQBrowseDoesNotWaitForAnOpenTransaction: a transaction left open in
// the DLQ (a killed instance's, until the broker aborts it) does not hold a
// browse: it reads up to the last stable offset.
func TestDLQBrowseDoesNotWaitForAnOpenTransaction(t *testing.T) {
	env := newEnv(t)
	cfg := env.baseConfig("eos-open")
	topic := uniq("eos-open")
	env.createTopics(t, 1, topic)
	cfg.DLQ.Partitions = 1
	rn := start(t, cfg, func(s *kafkaevents.Stack, r *message.Router) {
		_, err := s.AddHandler(r, topic, "EOS.permanent", func(*message.Message) error {
			return wire.Permanent(errors.New("permanent"))
		})
		require.NoError(t, err)
	})
	p, err := sarama.NewSyncProducerFromClient(env.client(t))
	require.NoError(t, err)
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("dead")})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		page, err := rn.Stack.BrowseDLQ(t.Context(), topic, 10, 0)
		return err == nil && page.Total == 1
	}, 30*time.Second, 50*time.Millisecond, "the record in the DLQ")

	// A transactional producer writes to the DLQ and never ends its
	// transaction.
	sc := env.saramaConfig()
	sc.Producer.Idempotent, sc.Producer.RequiredAcks, sc.Net.MaxOpenRequests = true, sarama.WaitForAll, 1
	sc.Producer.Transaction.ID = uniq("open-txn")
	client, err := sarama.NewClient(env.Brokers, sc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	open, err := sarama.NewAsyncProducerFromClient(client)
	require.NoError(t, err)
	t.Cleanup(func() { _ = open.Close() })
	require.NoError(t, open.BeginTxn())
	open.Input() <- &sarama.ProducerMessage{Topic: rn.Stack.DLQTopic(), Value: sarama.StringEncoder("in an open transaction")}
	select {
	case <-open.Successes():
	case perr := <-open.Errors():
		require.NoError(t, perr.Err)
	case <-time.After(30 * time.Second):
		t.Fatal("the open transaction's record was not written")
	}

	started := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	page, err := rn.Stack.BrowseDLQ(ctx, topic, 10, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, page.Total)
	assert.Less(t, time.Since(started), 5*time.Second, "the browse waited for the open transaction")
}

// TestTransactionsRefusedNameTheOption: a principal that may not use
// transactional IDs gets an error from New that names the option and the
// transactional ID; with the option off the same principal starts.
func TestTransactionsRefusedNameTheOption(t *testing.T) {
	allow := func(resource kmsg.ACLResourceType) kfake.ACL {
		return kfake.ACL{Resource: resource, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true}
	}
	// Everything but transactional IDs.
	broker := kafkatest.New(t, kafkatest.With(kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.User("PLAIN", "orders", "orders-secret",
			allow(kmsg.ACLResourceTypeTopic), allow(kmsg.ACLResourceTypeGroup),
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true})))
	cfg := kafkaevents.Config{
		ClientID: uniq("acl"), ServiceName: "acl-orders", Brokers: broker.Addrs(), StartupTimeout: 20 * time.Second,
		SASL: kafkaevents.SASLConfig{Mechanism: "plain", Username: "orders", Password: "orders-secret"},
		TLS:  kafkaevents.TLSConfig{Enabled: kafkaevents.Bool(false)},
	}
	_, err := kafkaevents.New(cfg, kafkaevents.WithLogger(watermill.NopLogger{}))
	require.Error(t, err)
	for _, want := range []string{"Producer.ExactlyOnceHandoffs", "KAFKA_PRODUCER_EXACTLY_ONCE_HANDOFFS", `"acl-orders.handoffs.`} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "orders-secret")

	cfg.Producer.ExactlyOnceHandoffs = kafkaevents.Bool(false)
	s, err := kafkaevents.New(cfg, kafkaevents.WithLogger(watermill.NopLogger{}))
	require.NoError(t, err, "the same principal without transactions")
	require.NoError(t, s.Close())
}
