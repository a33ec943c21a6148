package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs main instead of the tests when the test binary is started
// as the service by TestSIGTERMDuringStartup and TestSIGTERMDrains.
func TestMain(m *testing.M) {
	if os.Getenv("ORDERS_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSIGTERMDuringStartup starts the service against a broker address that
// accepts connections and never answers, and sends it SIGTERM while it
// connects: it exits within 5 s, saying what it was waiting for.
func TestSIGTERMDuringStartup(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for {
			select {
			case c := <-accepted:
				_ = c.Close()
			default:
				return
			}
		}
	})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ORDERS_RUN_MAIN=1", "KAFKA_BROKERS="+ln.Addr().String(), "PORT=0", "HOST=127.0.0.1")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// Wait until the service is connecting (its connection is accepted).
	var held net.Conn
	select {
	case held = <-accepted:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the service did not connect")
	}
	defer held.Close()
	began := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("exited %s after SIGTERM: %v", time.Since(began).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the service did not exit within 5 s of SIGTERM; its log:\n%s", stderr.String())
	}
	assert.Contains(t, stderr.String(), `msg="Startup interrupted"`)
	assert.Contains(t, stderr.String(), `waiting_for="connecting to the brokers"`)
}

// readyLine is the log line of a started service; it gives the HTTP address.
var readyLine = regexp.MustCompile(`msg="orders service ready" http=(\S+)`)

// TestSIGTERMDrains starts the service as a process, waits until
// /kafka/health/ready answers 200 and sends it SIGTERM, as docker stop and
// Kubernetes do: it drains and exits 0 (a process that does not handle
// SIGTERM dies of it at once, without the shutdown lines).
func TestSIGTERMDrains(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ORDERS_RUN_MAIN=1", "PORT=0", "HOST=127.0.0.1")
	if os.Getenv("KAFKA_BROKERS") != "" {
		id := "orders-sigterm-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
		cmd.Env = append(cmd.Env, "KAFKA_CLIENT_ID="+id, "KAFKA_CONSUMER_GROUP="+id+"-group")
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	ready := func() bool {
		m := readyLine.FindStringSubmatch(stderr.String())
		if m == nil {
			return false
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m[1]+"/kafka/health/ready", http.NoBody)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !assert.Eventually(t, ready, 30*time.Second, 50*time.Millisecond) {
		t.Fatalf("the service did not become ready; its log:\n%s", stderr.String())
	}

	began := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	var err error
	select {
	case err = <-exited:
		stopped = true
	case <-time.After(10 * time.Second):
		t.Fatalf("the service did not exit within 10 s of SIGTERM; its log:\n%s", stderr.String())
	}
	t.Logf("exited %s after SIGTERM", time.Since(began).Round(time.Millisecond))
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("SIGTERM: %v (exit code %d), want exit code 0; its log:\n%s", err, exit.ExitCode(), stderr.String())
	}
	require.NoError(t, err)
	assert.Contains(t, stderr.String(), `msg="shutting down: finishing in-flight messages"`)
	assert.Contains(t, stderr.String(), `msg=stopped`)
}
