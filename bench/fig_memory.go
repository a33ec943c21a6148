package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/wire"
)

// retryDelayForMemory is long enough that no retry is due while measuring.
const retryDelayForMemory = time.Minute

// memoryResult is what the child process reports.
type memoryResult struct {
	HWMKiB       int64   `json:"hwmKiB"`       // VmHWM: peak resident set
	RSSKiB       int64   `json:"rssKiB"`       // VmRSS when measured
	StartHWMKiB  int64   `json:"startHwmKiB"`  // VmHWM once the stack was built, before consuming
	HeapInuseMiB float64 `json:"heapInuseMiB"` // Go heap in use when measured
	Scheduled    int64   `json:"scheduled"`
	Waiting      int64   `json:"waiting"`
	Seconds      float64 `json:"seconds"` // until every retry was scheduled and read
}

// figMemory runs each measurement in a child process (this binary with
// -child memory) against the broker of this process, so that the peak RSS is
// the consumer's alone: neither the broker's data nor the other figures'.
func figMemory(e *env, o options, rep *report) error {
	n := o.counts().waiting
	topic := e.name("memory")
	if err := e.createTopics(topic); err != nil {
		return err
	}
	if err := e.produce(topic, n, func(i int) record { return event(i, o.size) }); err != nil {
		return err
	}
	fmt.Printf("\n[7] memory: %d messages failing once with a %s retry delay, in a child process\n", n, retryDelayForMemory)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var hwm, start, heap, secs []float64
	for run := range o.runs {
		cmd := exec.Command(exe, "-child", "memory", "-brokers", strings.Join(e.brokers, ","), "-topic", topic, "-n", strconv.Itoa(n))
		cmd.Env = append(os.Environ(), "KAFKA_BROKERS=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("child: %w: %s", err, strings.TrimSpace(errb.String()))
		}
		var r memoryResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return fmt.Errorf("child output %q: %w", out.String(), err)
		}
		hwm = append(hwm, float64(r.HWMKiB)/1024)
		start = append(start, float64(r.StartHWMKiB)/1024)
		heap = append(heap, r.HeapInuseMiB)
		secs = append(secs, r.Seconds)
		fmt.Printf("  run %d: peak RSS %.0f MB (%.0f MB before consuming), Go heap in use %.0f MB, %d scheduled, %d waiting, after %.1f s  load %s\n",
			run+1, hwm[run], start[run], r.HeapInuseMiB, r.Scheduled, r.Waiting, r.Seconds, loadAverage())
	}
	s := rep.section("7. Memory with waiting retries",
		fmt.Sprintf("A child process runs a stack whose handler fails the first delivery of each of %d pre-produced messages "+
			"(%d bytes) with a %s retry delay. It is measured once every retry is scheduled (RetryStats().Scheduled = %d) and the "+
			"retry consumer holds the head record of each retry partition (Waiting = %d); the others wait in Kafka. Peak RSS is "+
			"VmHWM from /proc/self/status; the broker runs in the parent process. MB here are MiB.",
			n, o.size, retryDelayForMemory, n, e.partitions))
	s.add(row{name: "peak RSS (VmHWM)", unit: "MB", vals: hwm, goal: "≤ 200 MB", met: atMost(200), ratio: "peak RSS with waiting retries"})
	s.add(row{name: "peak RSS once the stack is built, before consuming", unit: "MB", vals: start})
	s.add(row{name: "Go heap in use at the end", unit: "MB", vals: heap})
	s.add(row{name: "time to schedule every retry", unit: "s", vals: secs})
	return nil
}

// runChild runs the figure named by -child and prints its result as JSON.
func runChild(o options) error {
	if o.child != "memory" {
		return fmt.Errorf("unknown child %q", o.child)
	}
	e := &env{brokers: strings.Split(o.brokers, ","), real: true, partitions: 3, run: strconv.Itoa(os.Getpid())}
	cfg := e.stackConfig("memory")
	cfg.Retry.Attempts, cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 1, retryDelayForMemory, retryDelayForMemory
	sr, err := e.newStackRun(cfg, tracingNoop, func(s *kafkaevents.Stack, r *message.Router) error {
		_, err := s.AddHandler(r, o.topic, "Bench.failOnce", func(msg *message.Message) error {
			if wire.DeliveryOf(msg).RetryCount == 0 {
				return errors.New("fails once")
			}
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	defer sr.close()
	var res memoryResult
	res.StartHWMKiB, _ = procStatus("VmHWM")
	stop, err := runRouter(sr.router)
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	err = waitFor(10*time.Minute, "every retry scheduled and read", func() bool {
		st := sr.stack.RetryStats()
		return st.Scheduled >= int64(o.n) && st.Waiting >= int64(e.partitions)
	})
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	st := sr.stack.RetryStats()
	res.Scheduled, res.Waiting = st.Scheduled, st.Waiting
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapInuseMiB = float64(ms.HeapInuse) / (1 << 20)
	res.HWMKiB, _ = procStatus("VmHWM")
	res.RSSKiB, _ = procStatus("VmRSS")
	return json.NewEncoder(os.Stdout).Encode(res)
}

// procStatus reads a "kB" field of /proc/self/status.
func procStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s not in /proc/self/status", field)
}
