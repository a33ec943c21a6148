package chaos_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
)

// Topics of the reference service (examples/orders).
const (
	topicOrderCreated   = "order.created"
	topicOrderProcessed = "order.processed"
)

// full is set by KAFKAEVENTS_CHAOS=1 (make chaos): full-size scenarios.
var full = os.Getenv("KAFKAEVENTS_CHAOS") == "1"

// size picks the short or the full figure.
func size(short, long int) int {
	if full {
		return long
	}
	return short
}

// needProcesses skips scenarios that build and start processes under -short.
// Otherwise, on the embedded broker, where every scenario has a broker
// process of its own, the scenario runs in parallel with the others; on a
// real broker they share one broker and run one after the other.
func needProcesses(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the reference service and a broker as processes; runs without -short")
	}
	if os.Getenv("KAFKA_LOCAL_SCRIPT") == "" && os.Getenv("KAFKA_BROKERS") == "" {
		t.Parallel()
	}
}

// fullOnly skips a scenario unless KAFKAEVENTS_CHAOS=1.
func fullOnly(t *testing.T, why string) {
	t.Helper()
	if !full {
		t.Skip("runs with KAFKAEVENTS_CHAOS=1 (make chaos): " + why)
	}
}

func TestMain(m *testing.M) {
	// An interrupted run still stops what it started.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		killChildren()
		shutdownShared()
		os.Exit(130)
	}()
	code := m.Run()
	shutdownShared()
	os.Exit(code)
}

// children are the processes the tests started and have not reaped yet.
var children sync.Map // *os.Process -> struct{}

func killChildren() {
	children.Range(func(k, _ any) bool {
		_ = k.(*os.Process).Kill()
		return true
	})
}

// uniq returns a name unique to this run: services, groups and order IDs
// never collide between tests or runs on a shared broker.
func uniq(base string) string {
	return fmt.Sprintf("%s-%d%03d", base, time.Now().UnixMilli()%1e8, rand.IntN(1000))
}

// ---------------------------------------------------------------------------
// Binaries

type binaries struct{ Orders, Broker string }

var build struct {
	once sync.Once
	dir  string
	bins binaries
	err  error
}

// bins builds the reference service and cmd/embedded-kafka once per test
// binary. The service is built with -race when the tests run with it in full
// mode (or with KAFKAEVENTS_CHAOS_RACE=1), so that a data race in the library
// under chaos shows in the service's log; the short form saves the time.
func bins(t testing.TB) binaries {
	t.Helper()
	build.once.Do(func() {
		started := time.Now()
		build.dir, build.err = os.MkdirTemp("", "kafkaevents-chaos-")
		if build.err != nil {
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			build.err = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = fmt.Errorf("the go command is needed to build the service: %w", err)
			return
		}
		b := binaries{Orders: filepath.Join(build.dir, "orders"), Broker: filepath.Join(build.dir, "embedded-kafka")}
		for _, target := range []struct {
			out, pkg string
			race     bool
		}{{b.Orders, "./examples/orders", serviceRace()}, {b.Broker, "./cmd/embedded-kafka", false}} {
			args := []string{"build", "-o", target.out}
			if target.race {
				args = append(args, "-race")
			}
			cmd := exec.Command(goTool, append(args, target.pkg)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				build.err = fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
				return
			}
		}
		build.bins = b
		fmt.Fprintf(os.Stderr, "chaos: built the reference service (race=%v) and embedded-kafka in %s\n", serviceRace(), time.Since(started).Round(time.Millisecond))
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bins
}

func serviceRace() bool {
	return raceEnabled && (full || os.Getenv("KAFKAEVENTS_CHAOS_RACE") == "1")
}

// childEnv is the test's environment without the variables the service or
// the broker read, plus vars.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KAFKA_") || strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "EMBEDDED_KAFKA_") || k == "PORT" || k == "HOST" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ---------------------------------------------------------------------------
// Brokers

// cluster is where a scenario's services run: an embedded broker in a
// process of its own (the default), a private real Kafka started with
// KAFKA_LOCAL_SCRIPT (make test-kafka), or the Kafka in KAFKA_BROKERS.
type cluster struct {
	Brokers []string
	// Kind is "embedded" or "kafka".
	Kind string
	// Session and Heartbeat are the group timings the services get: 2s on
	// the embedded broker (started with a 500ms minimum), Kafka's minimum of
	// 6s on real Kafka.
	Session, Heartbeat string

	embedded *brokerProcess
	local    *localKafka
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	switch {
	case os.Getenv("KAFKA_LOCAL_SCRIPT") != "":
		k := privateKafka(t)
		c := &cluster{Brokers: k.Brokers, Kind: "kafka", Session: "6000", Heartbeat: "1000", local: k}
		c.createTopics(t, topicOrderCreated, topicOrderProcessed)
		c.truncate(t, topicOrderCreated, topicOrderProcessed)
		return c
	case os.Getenv("KAFKA_BROKERS") != "":
		c := &cluster{Brokers: strings.Split(os.Getenv("KAFKA_BROKERS"), ","), Kind: "kafka", Session: "6000", Heartbeat: "1000"}
		c.createTopics(t, topicOrderCreated, topicOrderProcessed)
		return c
	}
	args := []string{"-port", "0", "-min-session-timeout", "500ms", "-topics", topicOrderCreated + "," + topicOrderProcessed}
	if lvl := os.Getenv("KAFKAEVENTS_CHAOS_BROKER_LOG"); lvl != "" {
		args = append(args, "-log-level", lvl)
	}
	b := startBrokerProcess(t, args...)
	return &cluster{Brokers: []string{b.Addr}, Kind: "embedded", Session: "2000", Heartbeat: "400", embedded: b}
}

func (c *cluster) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.ClientID = "chaos-test"
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Producer.Retry.Max = 20
	sc.Producer.Retry.Backoff = 250 * time.Millisecond
	sc.Producer.MaxMessageBytes = 1 << 20
	sc.Net.MaxOpenRequests = 1
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// The readers see what a reader of the DLQ acts on: not the records of
	// aborted transactions (exactly-once hand-offs).
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	return sc
}

// waitGroupsStable waits until every group is Stable with at least one
// member, so that a kill that follows does not land in the middle of a join.
func (c *cluster) waitGroupsStable(t *testing.T, timeout time.Duration, groups ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		descs, err := admin.DescribeConsumerGroups(groups)
		stable := err == nil && len(descs) == len(groups)
		last = fmt.Sprint(err)
		for _, d := range descs {
			if d.State != "Stable" || len(d.Members) == 0 {
				stable = false
				last = fmt.Sprintf("group %s is %s with %d members", d.GroupId, d.State, len(d.Members))
			}
		}
		if stable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups %v not stable after %s: %s", groups, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createTopics creates the topics with 3 partitions unless they exist, as
// the embedded broker does at start.
func (c *cluster) createTopics(t *testing.T, topics ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	for _, topic := range topics {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			require.NoError(t, err, "create topic %s", topic)
		}
	}
	require.Eventually(t, func() bool {
		meta, err := admin.DescribeTopics(topics)
		if err != nil || len(meta) != len(topics) {
			return false
		}
		for _, m := range meta {
			if !errors.Is(m.Err, sarama.ErrNoError) || len(m.Partitions) == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "topics %v", topics)
}

// truncate deletes the records of topics that earlier scenarios left on a
// private broker, so that groups reading from the beginning start empty.
func (c *cluster) truncate(t *testing.T, topics ...string) {
	t.Helper()
	client, err := sarama.NewClient(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	require.NoError(t, err)
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			continue // not created yet
		}
		ends := map[int32]int64{}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			require.NoError(t, err)
			if end > 0 {
				ends[p] = end
			}
		}
		if len(ends) > 0 {
			require.NoError(t, admin.DeleteRecords(topic, ends), "truncate %s", topic)
		}
	}
}

// brokerProcess is cmd/embedded-kafka running as a child process.
type brokerProcess struct {
	t       *testing.T
	args    []string
	env     map[string]string
	Addr    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startBrokerProcess(t *testing.T, args ...string) *brokerProcess {
	t.Helper()
	return startBrokerProcessEnv(t, nil, args...)
}

// startBrokerProcessEnv is startBrokerProcess with extra environment
// variables (the SASL password).
func startBrokerProcessEnv(t *testing.T, env map[string]string, args ...string) *brokerProcess {
	t.Helper()
	b := &brokerProcess{t: t, args: args, env: env, logPath: filepath.Join(t.TempDir(), "broker.log")}
	b.Start()
	t.Cleanup(func() {
		b.Stop()
		keepLog(t, b.logPath)
	})
	return b
}

// keepLog copies a log into the directory KAFKAEVENTS_CHAOS_LOGS names, if
// any, as {test}-{file}.
func keepLog(t *testing.T, path string) {
	dir := os.Getenv("KAFKAEVENTS_CHAOS_LOGS")
	if dir == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + filepath.Base(path)
	if err := os.MkdirAll(dir, 0o750); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
}

// Start runs the broker and waits for the address it prints.
func (b *brokerProcess) Start() {
	b.t.Helper()
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(b.t, err)
	cmd := exec.Command(bins(b.t).Broker, b.args...)
	cmd.Env = childEnv(b.env)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	require.NoError(b.t, err)
	require.NoError(b.t, cmd.Start())
	done := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	children.Store(cmd.Process, struct{}{})
	go func() {
		_ = cmd.Wait()
		children.Delete(cmd.Process)
		_ = logf.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	select {
	case a := <-addr:
		require.NotEmpty(b.t, a, "embedded-kafka printed no address; log:\n%s", readTail(b.logPath))
		b.Addr = a
	case <-time.After(30 * time.Second):
		b.t.Fatalf("embedded-kafka did not start; log:\n%s", readTail(b.logPath))
	}
}

// Stop sends SIGTERM and waits for the broker to exit.
func (b *brokerProcess) Stop() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// localKafka is a real Kafka broker of the chaos tests' own, started with
// KAFKA_LOCAL_SCRIPT on free ports and a private data directory, so that
// stopping it disturbs no other test. It is shared by the chaos tests (which
// do not run in parallel) and removed after the last one.
type localKafka struct {
	Brokers []string
	script  string
	env     []string
	dir     string
}

var shared struct {
	once  sync.Once
	kafka *localKafka
	err   error
}

func privateKafka(t *testing.T) *localKafka {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "kafkaevents-chaos-kafka-")
		if err != nil {
			shared.err = err
			return
		}
		base := freePortRun(t, 4)
		k := &localKafka{
			Brokers: []string{fmt.Sprintf("127.0.0.1:%d", base)},
			script:  os.Getenv("KAFKA_LOCAL_SCRIPT"),
			dir:     dir,
			env: append(os.Environ(),
				fmt.Sprintf("KAFKA_LOCAL_PORT=%d", base),
				fmt.Sprintf("KAFKA_LOCAL_SASL_PORT=%d", base+1),
				fmt.Sprintf("KAFKA_LOCAL_CONTROLLER_PORT=%d", base+2),
				fmt.Sprintf("KAFKA_LOCAL_SASL_SSL_PORT=%d", base+3),
				"KAFKA_LOCAL_DIR="+dir),
		}
		started := time.Now()
		if err := k.Run("up"); err != nil {
			_ = os.RemoveAll(dir)
			shared.err = err
			return
		}
		fmt.Fprintf(os.Stderr, "chaos: private Kafka on %s up in %s\n", k.Brokers[0], time.Since(started).Round(time.Millisecond))
		shared.kafka = k
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.kafka
}

// Run runs the script with a subcommand (up, stop, start, down).
func (k *localKafka) Run(args ...string) error {
	cmd := exec.Command(k.script, args...)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(k.script), strings.Join(args, " "), err, out)
	}
	return nil
}

// freePortRun finds n consecutive free ports and returns the first.
func freePortRun(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		base := 33000 + rand.IntN(5000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			_ = ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func shutdownShared() {
	if k := shared.kafka; k != nil {
		if err := k.Run("down"); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
		}
		_ = os.RemoveAll(k.dir)
	}
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// ---------------------------------------------------------------------------
// The reference service as a process

// service is one instance of the reference service. Instances with the same
// Name share the client ID, the consumer group and the retry and DLQ topics.
type service struct {
	t       *testing.T
	Name    string
	URL     string
	env     []string
	logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	expected bool // the current process is expected to exit (we stopped it)
	Starts   int
}

// service prepares an instance of the reference service on c; vars override
// the defaults (small retry delays, reading from the beginning, short group
// timings). Start runs it.
func (c *cluster) service(t *testing.T, name string, vars map[string]string) *service {
	t.Helper()
	port := freePort(t)
	env := map[string]string{
		"KAFKA_BROKERS":            strings.Join(c.Brokers, ","),
		"KAFKA_CLIENT_ID":          name,
		"KAFKA_CONSUMER_GROUP":     name + "-group",
		"KAFKA_RETRY_BASE_DELAY":   "100",
		"KAFKA_RETRY_MAX_DELAY":    "400ms",
		"KAFKA_FROM_BEGINNING":     "true",
		"KAFKA_SESSION_TIMEOUT":    c.Session,
		"KAFKA_HEARTBEAT_INTERVAL": c.Heartbeat,
		// A member killed mid-rebalance holds the rebalance this long.
		"KAFKA_REBALANCE_TIMEOUT": "10s",
		"KAFKA_SHUTDOWN_TIMEOUT":  "15s",
		"KAFKA_LOG_LEVEL":         "info",
		"HOST":                    "127.0.0.1",
		"PORT":                    strconv.Itoa(port),
	}
	for k, v := range vars {
		env[k] = v
	}
	s := &service{
		t: t, Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d", port), env: childEnv(env),
		logPath: filepath.Join(t.TempDir(), fmt.Sprintf("service-%d.log", port)),
	}
	t.Cleanup(func() {
		s.Kill()
		keepLog(t, s.logPath)
		if logs := s.Logs(); strings.Contains(logs, "WARNING: DATA RACE") || strings.Contains(logs, "panic:") {
			t.Errorf("the service log of %s shows a data race or a panic:\n%s", s.URL, tail(logs, 200))
		}
		if t.Failed() {
			t.Logf("last lines of the service log of %s:\n%s", s.URL, tail(s.Logs(), 40))
		}
	})
	return s
}

// Start runs the service and waits until its HTTP server answers, which the
// reference service does once its router runs.
func (s *service) Start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(s.t, err)
	s.mu.Lock()
	s.Starts++
	fmt.Fprintf(logf, "===== start %d at %s\n", s.Starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bins(s.t).Orders)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		_ = logf.Close()
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	children.Store(cmd.Process, struct{}{})
	go func() {
		_ = cmd.Wait()
		children.Delete(cmd.Process)
		_ = logf.Close()
		close(done)
	}()
	s.cmd, s.done, s.expected = cmd, done, false
	s.mu.Unlock()

	deadline := time.Now().Add(90 * time.Second)
	for {
		if code, _ := s.Get("/kafka/health/live"); code == http.StatusOK {
			return
		}
		select {
		case <-done:
			s.t.Fatalf("the service exited during start (%s); log:\n%s", cmd.ProcessState, tail(s.Logs(), 60))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the service did not answer within 90s; log:\n%s", tail(s.Logs(), 60))
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *service) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.expected = true
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Terminate sends SIGTERM and waits up to timeout for the exit. It returns the
// exit code and how long the shutdown took.
func (s *service) Terminate(timeout time.Duration) (int, time.Duration) {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.expected = true
	s.mu.Unlock()
	require.NotNil(s.t, cmd, "service not started")
	start := time.Now()
	require.NoError(s.t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		s.t.Fatalf("the service did not stop within %s of SIGTERM; log:\n%s", timeout, tail(s.Logs(), 60))
	}
	return cmd.ProcessState.ExitCode(), time.Since(start)
}

// Crashed reports whether the process exited without being told to.
func (s *service) Crashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil || s.expected {
		return false
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Get fetches a path of the service; it returns 0 when the request fails.
func (s *service) Get(path string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// Logs returns everything the service wrote so far, over all its starts.
func (s *service) Logs() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), 40)
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// ---------------------------------------------------------------------------
// Orders

type orderKind int

const (
	kindOK         orderKind = iota
	kindFailOnce             // "failTimes":1: fails once, then succeeds on its retry
	kindAlwaysFail           // "shouldFail":true: retries run out, then the DLQ
)

type order struct {
	ID   string
	Kind orderKind
	// Key is the record key; empty means the order ID.
	Key string
}

// newOrders returns n orders: 10% fail once, 2% always fail.
func newOrders(prefix string, n int) []order {
	out := make([]order, n)
	for i := range out {
		o := order{ID: fmt.Sprintf("%s-%06d", prefix, i)}
		switch {
		case i%50 == 25:
			o.Kind = kindAlwaysFail
		case i%10 == 3:
			o.Kind = kindFailOnce
		}
		out[i] = o
	}
	return out
}

func (o order) Payload() []byte {
	switch o.Kind {
	case kindFailOnce:
		return fmt.Appendf(nil, `{"orderId":%q,"failTimes":1}`, o.ID)
	case kindAlwaysFail:
		return fmt.Appendf(nil, `{"orderId":%q,"shouldFail":true}`, o.ID)
	}
	return fmt.Appendf(nil, `{"orderId":%q,"amount":42}`, o.ID)
}

func (o order) Record() *sarama.ProducerMessage {
	key := o.Key
	if key == "" {
		key = o.ID
	}
	return &sarama.ProducerMessage{Topic: topicOrderCreated, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(o.Payload())}
}

func (c *cluster) producer(t *testing.T) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// feed publishes orders to order.created in batches at about perSecond, in
// the background; the channel reports the outcome.
func feed(ctx context.Context, p sarama.SyncProducer, orders []order, perSecond int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		const batch = 50
		interval := time.Duration(float64(time.Second) * batch / float64(perSecond))
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < len(orders); i += batch {
			recs := make([]*sarama.ProducerMessage, 0, batch)
			for _, o := range orders[i:min(i+batch, len(orders))] {
				recs = append(recs, o.Record())
			}
			if err := p.SendMessages(recs); err != nil {
				errc <- fmt.Errorf("feeding orders %d..: %w", i, err)
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// ---------------------------------------------------------------------------
// Outcomes

// tracker reads order.processed and a DLQ from the beginning and counts, per
// order, how often it was processed and dead-lettered (with the reasons).
type tracker struct {
	mu        sync.Mutex
	prefix    string
	processed map[string]int
	dead      map[string][]string
	last      time.Time
	// firstAt is, per order, the earliest processedAt of its order.processed
	// records: when the handler first handled it successfully.
	firstAt map[string]time.Time
}

func (c *cluster) track(t *testing.T, prefix string, topics ...string) *tracker {
	t.Helper()
	tr := &tracker{prefix: prefix, processed: map[string]int{}, dead: map[string][]string{}, firstAt: map[string]time.Time{}}
	c.readFromStart(t, tr.add, topics...)
	return tr
}

// readFromStart reads every partition of topics from the oldest offset,
// waiting for the topics to exist, and calls fn with each record until the
// test ends.
func (c *cluster) readFromStart(t *testing.T, fn func(*sarama.ConsumerMessage), topics ...string) {
	t.Helper()
	client, err := sarama.NewClient(c.Brokers, c.saramaConfig())
	require.NoError(t, err)
	consumer, err := sarama.NewConsumerFromClient(client)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = consumer.Close()
		_ = client.Close()
	})
	for _, topic := range topics {
		var parts []int32
		require.Eventually(t, func() bool {
			_ = client.RefreshMetadata(topic)
			parts, err = client.Partitions(topic)
			return err == nil && len(parts) > 0
		}, 60*time.Second, 100*time.Millisecond, "topic %s", topic)
		for _, p := range parts {
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pc.Close()
				for {
					select {
					case <-ctx.Done():
						return
					case m := <-pc.Messages():
						fn(m)
					}
				}
			}()
		}
	}
}

func (tr *tracker) add(m *sarama.ConsumerMessage) {
	id := string(m.Key)
	if !strings.HasPrefix(id, tr.prefix) {
		var v struct {
			OrderID string `json:"orderId"`
		}
		if json.Unmarshal(m.Value, &v) != nil || !strings.HasPrefix(v.OrderID, tr.prefix) {
			return
		}
		id = v.OrderID
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.last = time.Now()
	if m.Topic == topicOrderProcessed {
		tr.processed[id]++
		var v struct {
			ProcessedAt time.Time `json:"processedAt"`
		}
		if json.Unmarshal(m.Value, &v) == nil && !v.ProcessedAt.IsZero() {
			if at, ok := tr.firstAt[id]; !ok || v.ProcessedAt.Before(at) {
				tr.firstAt[id] = v.ProcessedAt
			}
		}
		return
	}
	reason := ""
	for _, h := range m.Headers {
		if string(h.Key) == "x-dlq-reason" {
			reason = string(h.Value)
		}
	}
	tr.dead[id] = append(tr.dead[id], reason)
}

// Settled returns how many of orders were processed or dead-lettered.
func (tr *tracker) Settled(orders []order) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, o := range orders {
		if tr.processed[o.ID] > 0 || len(tr.dead[o.ID]) > 0 {
			n++
		}
	}
	return n
}

// WaitSettled waits until at least n orders settled, failing the test when
// timeout passes or a service crashed on its own.
func (tr *tracker) WaitSettled(t *testing.T, orders []order, n int, timeout time.Duration, svcs ...*service) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, lastChange := -1, time.Now()
	idle := 0
	var nextCheck time.Time
	for {
		got := tr.Settled(orders)
		if got >= n {
			return
		}
		for _, s := range svcs {
			if s.Crashed() {
				t.Fatalf("service %s exited on its own; log:\n%s", s.URL, tail(s.Logs(), 60))
			}
		}
		if got != last {
			last, lastChange, idle = got, time.Now(), 0
		}
		// A loss shows at once, not as a timeout: once nothing settled for
		// a while and every service has read and committed everything
		// (main topics and retry lanes), the orders still missing never
		// will settle.
		if len(svcs) > 0 && time.Since(lastChange) >= lossQuiet && time.Now().After(nextCheck) {
			nextCheck = time.Now().Add(time.Second)
			if allIdle(svcs) {
				idle++
			} else {
				idle = 0
			}
			if idle >= lossChecks {
				tl := tr.Tally(orders)
				t.Fatalf("lost orders: %d of %d settled (want %d), nothing settled for %s and every service has committed all it read (lag 0, retry lanes empty); %d never settled, e.g. %v",
					got, len(orders), n, time.Since(lastChange).Round(time.Second), tl.Lost, tl.LostIDs)
			}
		}
		if time.Now().After(deadline) {
			tl := tr.Tally(orders)
			t.Fatalf("%d of %d orders settled after %s (want %d); missing e.g. %v", got, len(orders), timeout, n, tl.LostIDs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lossQuiet and lossChecks: WaitSettled calls orders lost when nothing
// settled for lossQuiet and lossChecks checks a second apart all found every
// service idle.
const (
	lossQuiet  = 3 * time.Second
	lossChecks = 3
)

// allIdle reports whether every service answers its metrics with no lag on
// the topics it consumes and no backlog in its retry lanes: all it read is
// handled and committed.
func allIdle(svcs []*service) bool {
	for _, s := range svcs {
		if _, ok := s.Idle(); !ok {
			return false
		}
	}
	return true
}

// WaitCommitted waits until the service's consumer group has committed
// past every record it had read when the wait began: the sum of its
// committed offsets (lag report of /kafka/metrics) reaches the sum of the
// end offsets seen at the start.
func (s *service) WaitCommitted(t *testing.T, timeout time.Duration) {
	t.Helper()
	lagSums := func() (committed, end int64, ok bool) {
		body, why := s.Metrics()
		if why != "" || len(body.Lag) == 0 {
			return 0, 0, false
		}
		for _, l := range body.Lag {
			committed += max(l.Committed, 0)
			end += l.End
		}
		return committed, end, true
	}
	var target int64 = -1
	deadline := time.Now().Add(timeout)
	for {
		committed, end, ok := lagSums()
		if ok && target < 0 {
			target = end
		}
		if ok && target >= 0 && committed >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: committed offsets did not reach %d within %s (last %d)", s.URL, target, timeout, committed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Idle reports whether the service has committed every record of the topics
// it consumes and of its retry lanes (lag 0, backlog 0, nothing waiting).
func (s *service) Idle() (string, bool) {
	body, why := s.Metrics()
	if why != "" {
		return why, false
	}
	switch {
	case body.LagError != "" || body.Retry.LanesError != "":
		return body.LagError + body.Retry.LanesError, false
	case len(body.Lag) == 0:
		return "no lag reported", false
	case body.Retry.Waiting > 0:
		return "retries waiting", false
	}
	for _, l := range body.Lag {
		if l.Lag > 0 {
			return "lag", false
		}
	}
	for _, l := range body.Retry.Lanes {
		if l.Backlog > 0 {
			return "retry backlog", false
		}
	}
	return "", true
}

// WaitQuiet waits until no new record arrived for quiet (at most timeout),
// so that late duplicates are counted.
func (tr *tracker) WaitQuiet(quiet, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		last := tr.last
		tr.mu.Unlock()
		if time.Since(last) >= quiet {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tally is the account of a scenario's orders.
type tally struct {
	Orders       int `json:"orders"`
	Processed    int `json:"processed"`    // orders with an order.processed record
	DeadLettered int `json:"deadLettered"` // orders with a DLQ record
	Lost         int `json:"lost"`         // orders with neither
	Duplicates   int `json:"duplicates"`   // outcome records beyond the first, over all orders
	// Misrouted counts always-failing orders that were processed
	// (FailedProcessed) and valid orders that were dead-lettered
	// (ValidDeadLettered).
	Misrouted         int            `json:"misrouted"`
	FailedProcessed   int            `json:"failedProcessed"`
	ValidDeadLettered int            `json:"validDeadLettered"`
	Reasons           map[string]int `json:"dlqReasons"`
	LostIDs           []string       `json:"-"`
	Wrong             []string       `json:"-"`
	DupIDs            []string       `json:"-"`
}

func (tr *tracker) Tally(orders []order) tally {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tl := tally{Orders: len(orders), Reasons: map[string]int{}}
	for _, o := range orders {
		p, d := tr.processed[o.ID], tr.dead[o.ID]
		if p > 0 {
			tl.Processed++
		}
		if len(d) > 0 {
			tl.DeadLettered++
		}
		for _, r := range d {
			tl.Reasons[r]++
		}
		switch {
		case p == 0 && len(d) == 0:
			tl.Lost++
			if len(tl.LostIDs) < 10 {
				tl.LostIDs = append(tl.LostIDs, o.ID)
			}
		case p+len(d) > 1:
			tl.Duplicates += p + len(d) - 1
			if len(tl.DupIDs) < 5 {
				tl.DupIDs = append(tl.DupIDs, fmt.Sprintf("%s (kind %d: processed %d, dlq %v)", o.ID, o.Kind, p, d))
			}
		}
		if o.Kind == kindAlwaysFail && p > 0 {
			tl.FailedProcessed++
		}
		if o.Kind == kindOK && len(d) > 0 {
			tl.ValidDeadLettered++
		}
		if (o.Kind == kindAlwaysFail && p > 0) || (o.Kind == kindOK && len(d) > 0) {
			tl.Misrouted++
			if len(tl.Wrong) < 10 {
				tl.Wrong = append(tl.Wrong, fmt.Sprintf("%s (processed %d, dlq %v)", o.ID, p, d))
			}
		}
	}
	return tl
}

// ---------------------------------------------------------------------------
// Reporting

// result is one scenario's line in the report (RELIABILITY.md).
type result struct {
	Scenario string `json:"scenario"`
	Broker   string `json:"broker"`
	Full     bool   `json:"full"`
	Injected string `json:"injected"`
	tally
	Recovery string `json:"recovery,omitempty"`
	Took     string `json:"took"`
	Notes    string `json:"notes,omitempty"`
}

// report logs r and, when KAFKAEVENTS_CHAOS_REPORT names a file, appends it
// there as a JSON line.
func report(t *testing.T, r result) {
	t.Helper()
	r.Full = full
	t.Logf("RESULT %s on %s: injected %s; orders %d, processed %d, dead-lettered %d, lost %d, duplicates %d, misrouted %d, reasons %v; recovery %s; took %s %s",
		r.Scenario, r.Broker, r.Injected, r.Orders, r.Processed, r.DeadLettered, r.Lost, r.Duplicates, r.Misrouted, r.Reasons, r.Recovery, r.Took, r.Notes)
	if len(r.DupIDs) > 0 {
		t.Logf("duplicates, e.g.: %s", strings.Join(r.DupIDs, "; "))
	}
	path := os.Getenv("KAFKAEVENTS_CHAOS_REPORT")
	if path == "" {
		return
	}
	line, err := json.Marshal(r)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	require.NoError(t, err)
}

// ---------------------------------------------------------------------------
// Groups

// groupView is what DescribeGroups tells of a consumer group.
type groupView struct {
	State string
	// Protocol is the rebalance strategy the group agreed on ("range",
	// "cooperative-sticky", ...).
	Protocol string
	// Owned is, per member, the partitions it owns of the topic asked for.
	Owned map[string][]int32
	// Generation is the group's generation, or -1 where it does not show.
	// DescribeGroups does not return it, but with cooperative-sticky every
	// member sends, when it joins, the generation it was last assigned in:
	// the group's generation is one more than the newest of those (1 when
	// no member was assigned before, as in a new group).
	Generation int32
}

// Sharing returns how many partitions each member that owns some holds,
// smallest first, and how many they hold in all.
func (g groupView) Sharing() (shares []int, total int) {
	for _, ps := range g.Owned {
		if len(ps) > 0 {
			shares = append(shares, len(ps))
			total += len(ps)
		}
	}
	sort.Ints(shares)
	return shares, total
}

// assignment describes group, with the partitions of topic per member.
func (c *cluster) assignment(group, topic string) (groupView, error) {
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.saramaConfig())
	if err != nil {
		return groupView{}, err
	}
	defer admin.Close()
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return groupView{}, err
	}
	if len(groups) != 1 {
		return groupView{}, fmt.Errorf("group %s: %d descriptions", group, len(groups))
	}
	d := groups[0]
	g := groupView{State: d.State, Protocol: d.Protocol, Owned: map[string][]int32{}, Generation: -1}
	for id, m := range d.Members {
		a, err := m.GetMemberAssignment()
		if err != nil {
			return groupView{}, err
		}
		if a != nil {
			g.Owned[id] = append(g.Owned[id], a.Topics[topic]...)
		} else {
			g.Owned[id] = nil
		}
		if last, ok := lastGeneration(d.Protocol, m); ok {
			g.Generation = max(g.Generation, max(last, 0)+1)
		}
	}
	return g, nil
}

// lastGeneration returns the generation a member of a group on protocol
// says, in its latest join, it was last assigned in (-1: none yet). ok is
// false when its subscription does not say: only subscriptions of version 2
// (Kafka 3.2 and newer) and cooperative-sticky's user data (a bare int32)
// carry it.
func lastGeneration(protocol string, m *sarama.GroupMemberDescription) (int32, bool) {
	meta, err := m.GetMemberMetadata()
	switch {
	case err != nil || meta == nil:
		return 0, false
	case meta.Version >= 2:
		return meta.GenerationID, true
	case protocol == sarama.CooperativeStickyBalanceStrategyName && len(meta.UserData) == 4:
		return int32(binary.BigEndian.Uint32(meta.UserData)), true
	}
	return 0, false
}

// retryStats are the retry counters of GET /kafka/metrics.
type retryStats struct {
	Scheduled  int64 `json:"scheduled"`
	Delivered  int64 `json:"delivered"`
	Waiting    int64 `json:"waiting"`
	Unroutable int64 `json:"unroutable"`
	Exhausted  int64 `json:"exhausted"`
}

// metricsBody is the part of /kafka/metrics the scenarios read.
type metricsBody struct {
	Lag []struct {
		Committed int64 `json:"committed"`
		End       int64 `json:"end"`
		Lag       int64 `json:"lag"`
	} `json:"lag"`
	LagError string `json:"lagError"`
	Retry    struct {
		retryStats
		Lanes []struct {
			Backlog int64 `json:"backlog"`
		} `json:"lanes"`
		LanesError string `json:"lanesError"`
	} `json:"retry"`
}

// Metrics reads the service's /kafka/metrics; the string says why it could
// not.
func (s *service) Metrics() (metricsBody, string) {
	var body metricsBody
	code, b := s.Get("/kafka/metrics")
	if code != http.StatusOK {
		return body, fmt.Sprintf("metrics answered %d", code)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return body, err.Error()
	}
	return body, ""
}

// RetryStats reads the service's retry counters (zero when it does not answer).
func (s *service) RetryStats() retryStats {
	body, _ := s.Metrics()
	return body.Retry.retryStats
}

// WaitReady waits for /kafka/health/ready to answer 200: the consumer group
// is stable with its partitions assigned.
func (s *service) WaitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := s.Get("/kafka/health/ready")
		if code == http.StatusOK {
			return
		}
		if s.Crashed() {
			s.t.Fatalf("service %s exited on its own; log:\n%s", s.URL, tail(s.Logs(), 60))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("service %s not ready after %s: %d %s", s.URL, timeout, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUntil polls cond every 50ms until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, svcs ...*service) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		for _, s := range svcs {
			if s.Crashed() {
				t.Fatalf("service %s exited on its own; log:\n%s", s.URL, tail(s.Logs(), 60))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
