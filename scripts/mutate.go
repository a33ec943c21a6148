//go:build ignore

// Command mutate applies one-line breakages of the implementation, one at a
// time, to a copy of the working tree and runs the tests that should notice
// each. It reports which breakages the suite catches and which survive.
//
//	go run scripts/mutate.go              # every mutation, once
//	go run scripts/mutate.go -n 10        # each 10 times: caught must be 10/10
//	go run scripts/mutate.go -only keyorder-busy
//	go run scripts/mutate.go -list
//
// A mutation whose text is no longer found exactly once in its file is
// reported as stale: the code moved and the list must follow it. Mutations
// marked known are breakages the suite is known not to catch; they are run
// and reported like the others so that the list stays honest. The exit code
// is 1 when a mutation that is not known survives or is stale.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mutation is one breakage: in File, Old (found exactly once) becomes New,
// and `go test -run Run Pkgs` must fail.
type mutation struct {
	Name  string
	What  string
	File  string
	Old   string
	New   string
	Pkgs  []string
	Run   string
	Known string // why the suite does not catch it; empty when it must
}

var mutations = []mutation{
	{
		Name: "keyorder-busy", What: "the key scheduler runs a record while a record of its key runs",
		File: "internal/consume/scheduler.go",
		Old:  "if q, busy := keys[r.key]; busy {", New: "if q, busy := keys[r.key]; busy && false {",
		Pkgs: []string{"."}, Run: "TestConcurrencyRunsOneRecordOfAKeyAtATime|TestConcurrencyKeepsKeyOrder|TestReclaimKeepsAKeyBusy",
	},
	{
		Name: "coop-revoke-unseen", What: "a claim is revoked only when its session ends, not when a cooperative rebalance closes its partition",
		File: "internal/offsets/offsets.go",
		Old:  "\tif ce, ok := claim.(consumerErrors); ok {\n\t\terrs = ce.Errors()\n\t}\n", New: "",
		Pkgs: []string{"."}, Run: "TestCooperativeStickyHandsOverPromptly",
	},
	{
		Name: "coop-release-slow", What: "sarama's 100ms MaxProcessingTime: a revoked partition is released only once the slow partitions kept are fed",
		File: "config_sarama.go",
		Old:  "sc.Consumer.MaxProcessingTime = 10 * time.Millisecond", New: "sc.Consumer.MaxProcessingTime = 100 * time.Millisecond",
		Pkgs: []string{"."}, Run: "TestCooperativeStickyHandsOverPromptly",
	},
	{
		Name: "forged-metadata", What: "commit metadata naming offsets past the partition's end is trusted",
		File: "internal/offsets/offsets.go",
		Old:  "case w.End > hwm:", New: "case w.End > hwm && false:",
		Pkgs: []string{"./internal/offsets", "."}, Run: "TestMetadataIsTrusted|TestForgedMetadataSkipsNothing",
	},
	{
		Name: "dlq-parking", What: "a DLQ record at MaxReprocess is delivered instead of parked",
		File: "dlq/reprocess_deliver.go",
		Old:  "if count >= r.cfg.MaxReprocess {", New: "if count >= r.cfg.MaxReprocess && false {",
		Pkgs: []string{"./dlq", "."}, Run: "Reprocess|Park",
	},
	{
		Name: "redact-keyfile", What: "the TLS key path is no longer redacted when a config is printed",
		File: "config_redact.go",
		Old:  `"Secret", "KeyFile"}`, New: `"Secret"}`,
		Pkgs: []string{"."}, Run: "TestSecretsAreNeverPrinted|Redact",
	},
	{
		Name: "waitdlq-topic", What: "Harness.WaitDLQ accepts a DLQ record of any topic",
		File: "kafkatest/harness.go",
		Old:  "return r.Headers[wire.HeaderOriginalTopic] == want", New: "return r.Headers[wire.HeaderOriginalTopic] != \"\" || want == \"\"",
		Pkgs: []string{"./kafkatest"}, Run: ".",
	},
	{
		Name: "handoff-release-early", What: "a hand-off releases its offset hold before the broker acknowledged the record",
		File: "wire/handoff.go",
		Old:  "\tagain := copyRecord(rec)\n", New: "\tagain := copyRecord(rec)\n\thold.Release()\n",
		Pkgs: []string{"."}, Run: "TestRetryHandoff|TestDLQHandoff",
	},
	{
		Name: "retry-early", What: "the retry consumer dispatches a retry before it is due",
		File: "delayedretry/consumer.go",
		Old:  "\tif wait <= 0 {\n\t\treturn true\n\t}\n\tm := c.cfg.Metrics.of(handlerID)", New: "\tif wait <= time.Hour {\n\t\treturn true\n\t}\n\tm := c.cfg.Metrics.of(handlerID)",
		Pkgs: []string{"./delayedretry", "."}, Run: "TestRetryPrecisionMixedDelays|TestFailTwiceSucceedsOnThirdDelivery|Consumer",
	},
	{
		Name: "admin-auth", What: "the admin endpoints accept a wrong token",
		File: "health/admin.go",
		Old:  "if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {", New: "if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 && false {",
		Pkgs: []string{"./health"}, Run: "Admin|Auth|Token",
	},
	{
		Name: "handoff-release-early-crash", What: "the same early release, seen by the crash scenarios alone",
		File: "wire/handoff.go",
		Old:  "\tagain := copyRecord(rec)\n", New: "\tagain := copyRecord(rec)\n\thold.Release()\n",
		Pkgs: []string{"./chaos"}, Run: "^TestCrashLosesNothing$",
		Known: "the window between the release and the acknowledgement is too narrow for a random SIGKILL; the in-process hand-off tests catch it",
	},
}

func main() {
	n := flag.Int("n", 1, "runs of each mutation")
	only := flag.String("only", "", "run only the mutation of this name")
	list := flag.Bool("list", false, "list the mutations and exit")
	timeout := flag.Duration("timeout", 10*time.Minute, "time limit of one test run")
	flag.Parse()
	if *list {
		for _, m := range mutations {
			known := ""
			if m.Known != "" {
				known = " (known to survive: " + m.Known + ")"
			}
			fmt.Printf("%-28s %s%s\n", m.Name, m.What, known)
		}
		return
	}
	root, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	bad := 0
	for _, m := range mutations {
		if *only != "" && m.Name != *only {
			continue
		}
		if !check(root, m, *n, *timeout) {
			bad++
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}

// check runs m n times and prints one line; it reports false for a
// mutation that is stale, does not build, or survives without being known
// to.
func check(root string, m mutation, n int, timeout time.Duration) bool {
	caught, survived := 0, 0
	for range n {
		res, detail, err := runOne(root, m, timeout)
		switch {
		case err != nil:
			fmt.Printf("%-28s STALE    %v\n", m.Name, err)
			return false
		case res == "broken":
			fmt.Printf("%-28s BROKEN   the mutated tree does not build: %s\n", m.Name, firstLine(detail))
			return false
		case res == "caught":
			caught++
		default:
			survived++
		}
	}
	switch {
	case survived == 0:
		fmt.Printf("%-28s caught   %d/%d  %s\n", m.Name, caught, n, m.What)
		return true
	case m.Known != "":
		fmt.Printf("%-28s survived %d/%d  known: %s\n", m.Name, survived, n, m.Known)
		return true
	default:
		fmt.Printf("%-28s SURVIVED %d/%d  %s\n", m.Name, survived, n, m.What)
		return false
	}
}

// runOne copies the tree, applies m and runs its tests: "caught" when they
// fail, "survived" when they pass, "broken" when the package does not build.
func runOne(root string, m mutation, timeout time.Duration) (string, string, error) {
	dir, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	if err := copyTree(root, dir); err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, m.File)
	src, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	if c := strings.Count(string(src), m.Old); c != 1 {
		return "", "", fmt.Errorf("%s: the text to break is found %d times, want 1: %q", m.File, c, m.Old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), m.Old, m.New, 1)), 0o644); err != nil {
		return "", "", err
	}
	vet := exec.Command("go", "vet", "./"+filepath.Dir(m.File))
	vet.Dir = dir
	if out, err := vet.CombinedOutput(); err != nil {
		return "broken", string(out), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"test", "-count=1", "-run", m.Run}, m.Pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "survived", "", nil
	case errors.As(err, &exit) && strings.Contains(string(out), "[build failed]"):
		return "broken", string(out), nil
	default:
		return "caught", "", nil
	}
}

// copyTree copies root into dir, without .git, bin and the benchmark output.
func copyTree(root, dir string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutate:", err)
	os.Exit(2)
}
