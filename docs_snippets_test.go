package kafkaevents_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// snippetSkipMarker, on the line before a ```go block of the documentation,
// exempts the block from compilation: a fragment that only makes sense in
// its surroundings. Every other Go block must be a complete file.
const snippetSkipMarker = "<!-- snippet: fragment -->"

// snippet is a ```go block of a markdown file.
type snippet struct {
	file string
	line int // of the opening fence
	code string
	skip bool
}

func (s snippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// goSnippets returns the ```go blocks of the markdown file path.
func goSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		out  []snippet
		cur  *snippet
		prev string
		body strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &snippet{file: path, line: n, skip: strings.TrimSpace(prev) == snippetSkipMarker}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.code = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
		prev = line
	}
	require.NoError(t, sc.Err())
	return out
}

var packageClause = regexp.MustCompile(`(?m)^package (\w+)`)

// TestDocsGoSnippetsCompile builds every ```go block of README.md and
// docs/*.md in a temporary module that requires this repository (replace
// directive): each block is a complete file, compiled with go vet, unless
// the line before it is snippetSkipMarker.
func TestDocsGoSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the documentation's Go code with the go command")
	}
	files, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	files = append([]string{docsREADME}, files...)

	dir := t.TempDir()
	var built []string
	for _, f := range files {
		for _, s := range goSnippets(t, f) {
			if s.skip {
				continue
			}
			m := packageClause.FindStringSubmatch(s.code)
			if m == nil {
				t.Errorf("%s: a Go block that is not a complete file (no package clause); make it one, or put %q on the line before it", s, snippetSkipMarker)
				continue
			}
			pkgDir := filepath.Join(dir, fmt.Sprintf("s%02d", len(built)))
			require.NoError(t, os.Mkdir(pkgDir, 0o755))
			name := "snippet.go"
			if strings.HasSuffix(m[1], "_test") || strings.Contains(s.code, "*testing.T)") {
				name = "snippet_test.go"
			}
			require.NoError(t, os.WriteFile(filepath.Join(pkgDir, name), []byte(s.code), 0o644))
			built = append(built, s.String())
		}
	}
	if t.Failed() {
		return
	}
	if len(built) == 0 {
		t.Fatal("found no Go block to build in the documentation: the snippet scan is broken")
	}

	writeSnippetModule(t, dir)
	cmd := exec.CommandContext(t.Context(), "go", "vet", "./...")
	cmd.Dir = dir
	cmd.Env = snippetEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// Name the markdown block of each directory in the output.
		report := out.String()
		for i, s := range built {
			report = strings.ReplaceAll(report, fmt.Sprintf("s%02d/", i), s+" ")
		}
		t.Fatalf("the documentation's Go code does not build (go vet: %v):\n%s", err, report)
	}
	t.Logf("built %d Go blocks: %s", len(built), strings.Join(built, ", "))
}

// writeSnippetModule writes into dir the go.mod and go.sum of a module that
// requires what this repository requires, and this repository itself from
// its directory (replace directive), as a user's module would. Build in it
// with snippetEnv.
func writeSnippetModule(t *testing.T, dir string) {
	t.Helper()
	repo, err := os.Getwd()
	require.NoError(t, err)
	mod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module docsnippets"))
	mod = append(mod, fmt.Sprintf("\nrequire github.com/torix/kafkaevents v0.0.0\n\nreplace github.com/torix/kafkaevents => %s\n", repo)...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), mod, 0o644))
	sum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
}

// snippetEnv is the environment of the go command in a module of
// writeSnippetModule: offline, from the module cache.
func snippetEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
}
