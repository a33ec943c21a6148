package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// benchPattern selects the micro-benchmarks of the root package
// (middlewares_bench_test.go).
const benchPattern = "^BenchmarkMiddlewares"

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)

type benchResult struct{ ns, bytes, allocs []float64 }

// figMicro runs the middleware micro-benchmarks with go test and reports
// ns/op and allocs/op of each.
func figMicro(_ *env, o options, rep *report) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	count := strconv.Itoa(o.runs)
	args := []string{"test", "-run", "^$", "-bench", benchPattern, "-benchmem", "-count", count, "-benchtime", o.counts().benchtime, "."}
	fmt.Printf("\n[6] micro-benchmarks: go %s\n", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS=") // the benchmarks start their own embedded broker
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench: %w\n%s", err, out.String())
	}
	results := map[string]*benchResult{}
	var order []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := m[1]
		r := results[name]
		if r == nil {
			r = &benchResult{}
			results[name] = r
			order = append(order, name)
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		b, _ := strconv.ParseFloat(m[3], 64)
		a, _ := strconv.ParseFloat(m[4], 64)
		r.ns, r.bytes, r.allocs = append(r.ns, ns), append(r.bytes, b), append(r.allocs, a)
		fmt.Printf("  %s\n", sc.Text())
	}
	if len(order) == 0 {
		return fmt.Errorf("no benchmark results in:\n%s", out.String())
	}
	s := rep.section("6. Middleware micro-benchmarks",
		"`go test -run '^$' -bench '"+benchPattern+"' -benchmem` in the root package (middlewares_bench_test.go), "+
			"-count "+count+", -benchtime "+o.counts().benchtime+". Each middleware wraps a no-op handler and runs on the success "+
			"path of a message exactly as a router delivers it: captured from a real Watermill router fed by the watermill-kafka "+
			"subscriber (handler name, topic, partition, offset and key in its context; a key, a 1 KiB payload and an "+
			"x-correlation-id header). No-op tracer provider except where the name says OTelSDK. The */fresh-goroutine cases run "+
			"each message in a new goroutine, as Watermill's router does, so they include the goroutine and any stack growth.")
	for _, name := range order {
		r := results[name]
		short := strings.TrimPrefix(name, "Benchmark")
		detail := fmt.Sprintf("(%s B/op, %s allocs/op)", format(median(r.bytes), "B/op"), format(median(r.allocs), "allocs/op"))
		if short == "Middlewares/chain" {
			s.add(row{name: short + " ns/op", unit: "ns/op", vals: r.ns, goal: "≤ 2000 ns", met: atMost(2000), ratio: "middleware chain ns/op"})
			s.add(row{name: short + " allocs/op", unit: "allocs/op", vals: r.allocs, goal: "≤ 15", met: atMost(15), ratio: "middleware chain allocs/op"})
			continue
		}
		s.add(row{name: short, unit: "ns/op", vals: r.ns, detail: detail})
	}
	return nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the kafkaevents module")
	}
	return filepath.Dir(mod), nil
}
