package kafkaevents_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestREADMEServiceDrainsOnSIGTERM builds the README's main.go as a user
// would (a module of its own that requires this one), runs it against the
// suite's broker and sends it SIGTERM, as docker stop and Kubernetes do,
// once it is ready, has handled a record and dead-lettered another (logged
// at WARN): it stops its router, which
// waits for the messages in flight, and exits 0. A service that left
// SIGTERM to Go's default would die of it at once (exit code 143, no
// "Router closed").
func TestREADMEServiceDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's service with the go command")
	}
	var main string
	for _, s := range goSnippets(t, docsREADME) {
		if strings.Contains(s.code, "package main") && strings.Contains(s.code, "signal.NotifyContext") {
			main = s.code
			break
		}
	}
	require.NotEmpty(t, main, "README.md has no ```go block of a main package with signal.NotifyContext")
	const addr = `":3000"`
	require.Contains(t, main, addr, "the README's service no longer listens on :3000; update this test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	main = strings.Replace(main, addr, fmt.Sprintf(`"127.0.0.1:%d"`, port), 1)

	dir := t.TempDir()
	writeSnippetModule(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644))
	bin := filepath.Join(dir, "orders")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	build.Dir, build.Env = dir, snippetEnv()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build of the README's service:\n%s", out)

	env := newEnv(t)
	// The README's topic names are fixed: on a shared real broker they may
	// exist already, with the partitions of whoever created them (the
	// reference service's tests make 3). The record below goes to partition
	// 0 whatever their number.
	ensureTopics(t, env, "order.created", "payment.failed")
	group := uniq("readme-group")
	svc := exec.Command(bin)
	svc.Env = append(os.Environ(), "KAFKA_BROKERS="+strings.Join(env.Brokers, ","),
		"KAFKA_CONSUMER_GROUP="+group, "KAFKA_FROM_BEGINNING=false")
	var logs syncBuffer
	svc.Stdout, svc.Stderr = &logs, &logs
	require.NoError(t, svc.Start())
	exited := make(chan error, 1)
	go func() { exited <- svc.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = svc.Process.Kill()
			<-exited
		}
	})

	ready := fmt.Sprintf("http://127.0.0.1:%d/kafka/health/ready", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(ready)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "the README's service did not become ready; its log:\n%s", &logs)

	// A record handled, and its offset committed, before the stop.
	pc := env.saramaConfig()
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(env.Brokers, pc)
	require.NoError(t, err)
	defer p.Close()
	_, offset, err := p.SendMessage(&sarama.ProducerMessage{Topic: "order.created", Partition: 0, Value: sarama.StringEncoder(`{"orderId":"o-1"}`)})
	require.NoError(t, err)
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.Eventually(t, func() bool {
		return committedOffsetNow(admin, group, "order.created") > offset
	}, 30*time.Second, 50*time.Millisecond, "the record was not handled and committed; the log:\n%s", &logs)

	// An order without an ID is a permanent failure: dead-lettered, with a
	// WARN line.
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "order.created", Partition: 0, Value: sarama.StringEncoder(`{"orderId":""}`)})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="Message stored in the DLQ"`)
	}, 30*time.Second, 50*time.Millisecond, "no WARN line of the dead letter; the log:\n%s", &logs)

	require.NoError(t, svc.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		stopped = true
		require.NoError(t, err, "the README's service did not exit 0 on SIGTERM; its log:\n%s", &logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the README's service did not exit within 30 s of SIGTERM; its log:\n%s", &logs)
	}
	assert.Contains(t, logs.String(), `msg="Router closed"`, "the router was closed, waiting for its messages")
	assert.NotContains(t, logs.String(), "level=ERROR", "an error on the way out")
}

// ensureTopics creates the topics that do not exist yet, with one partition,
// and waits until the broker describes every one of them.
func ensureTopics(t *testing.T, env *testEnv, names ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(env.Brokers, env.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	for _, n := range names {
		err := admin.CreateTopic(n, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) && !strings.Contains(err.Error(), "already exists") {
			require.NoError(t, err, "create topic %s", n)
		}
	}
	require.Eventually(t, func() bool {
		meta, err := admin.DescribeTopics(names)
		if err != nil || len(meta) != len(names) {
			return false
		}
		for _, m := range meta {
			if m.Err != sarama.ErrNoError || len(m.Partitions) == 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "topics %v not ready", names)
}
