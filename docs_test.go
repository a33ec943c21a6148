package kafkaevents_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The documentation tests keep the markdown files true to the repository:
// links resolve, the variable table matches the code, and the README stays
// short. They read files relative to the repository root, which is the
// directory of this package.

const (
	docsREADME          = "README.md"
	docsConfiguration   = "docs/configuration.md"
	docsConfigEnvSource = "config_env.go"
	docsREADMEMaxLines  = 400
)

// docsMarkdownFiles returns the markdown files whose links are checked.
func docsMarkdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{docsREADME, "BENCHMARKS.md", "RELIABILITY.md", "CHANGELOG.md"}
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, pages, "no markdown files in docs/")
	return append(files, pages...)
}

// docsFence matches the opening or closing line of a fenced code block.
var docsFence = regexp.MustCompile("^\\s{0,3}(```|~~~)")

// docsProse returns the lines of a markdown file with fenced code blocks
// blanked out (line numbers are kept), so that code is not read as markdown.
func docsProse(content string) []string {
	lines := strings.Split(content, "\n")
	out := make([]string, len(lines))
	var fence string
	for i, line := range lines {
		if m := docsFence.FindStringSubmatch(line); m != nil {
			switch fence {
			case "":
				fence = m[1]
				continue
			case m[1]:
				fence = ""
				continue
			}
		}
		if fence == "" {
			out[i] = line
		}
	}
	return out
}

// docsCodeSpan matches inline code, which is not searched for links.
var docsCodeSpan = regexp.MustCompile("`+[^`]*`+")

var (
	// docsInlineLink matches [text](target) and ![alt](target), with an
	// optional title after the target.
	docsInlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// docsReferenceLink matches a link reference definition: [label]: target.
	docsReferenceLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
)

type docsLink struct {
	file   string // the markdown file the link is in
	line   int    // 1-based
	target string // as written
}

// docsLinks returns the links of a markdown file outside code.
func docsLinks(file, content string) []docsLink {
	var links []docsLink
	for i, line := range docsProse(content) {
		if m := docsReferenceLink.FindStringSubmatch(line); m != nil {
			links = append(links, docsLink{file: file, line: i + 1, target: m[1]})
			continue
		}
		line = docsCodeSpan.ReplaceAllString(line, "")
		for _, m := range docsInlineLink.FindAllStringSubmatch(line, -1) {
			links = append(links, docsLink{file: file, line: i + 1, target: m[1]})
		}
	}
	return links
}

func docsIsExternal(target string) bool {
	lower := strings.ToLower(target)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "mailto:")
}

var (
	docsHeading      = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	docsHeadingLink  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	docsHTMLAnchorID = regexp.MustCompile(`<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"`)
)

// docsSlug turns a heading into its anchor the way GitHub does: lowercase,
// punctuation other than '-' and '_' dropped, spaces turned into '-'.
func docsSlug(heading string) string {
	heading = docsHeadingLink.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-', r == '_', unicode.IsLetter(r), unicode.IsDigit(r), unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// docsAnchors returns the anchors of a markdown file: the slugs of its
// headings (a repeated slug gets -1, -2, ... as on GitHub) and the ids of
// explicit HTML anchors.
func docsAnchors(content string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, line := range docsProse(content) {
		for _, m := range docsHTMLAnchorID.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		m := docsHeading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := docsSlug(m[1])
		if n := seen[slug]; n > 0 {
			anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

func TestDocsLinksResolve(t *testing.T) {
	anchorsOf := map[string]map[string]bool{} // by cleaned path
	anchors := func(path string) map[string]bool {
		if a, ok := anchorsOf[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		anchorsOf[path] = docsAnchors(string(b))
		return anchorsOf[path]
	}

	checked := 0
	for _, file := range docsMarkdownFiles(t) {
		b, err := os.ReadFile(file)
		require.NoError(t, err, "read %s", file)
		for _, l := range docsLinks(file, string(b)) {
			if docsIsExternal(l.target) {
				continue
			}
			checked++
			where := file + ":" + strconv.Itoa(l.line)
			path, anchor, _ := strings.Cut(l.target, "#")
			path, err := url.PathUnescape(path)
			if !assert.NoError(t, err, "%s: link %q: bad escape", where, l.target) {
				continue
			}
			target := filepath.Clean(file) // a link to #anchor alone stays in the file
			if path != "" {
				if filepath.IsAbs(path) || strings.HasPrefix(path, "/") {
					t.Errorf("%s: link %q: use a path relative to %s", where, l.target, file)
					continue
				}
				target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
			}
			info, err := os.Stat(target)
			if err != nil {
				t.Errorf("%s: link %q: %s does not exist", where, l.target, filepath.ToSlash(target))
				continue
			}
			if anchor == "" || info.IsDir() || !strings.EqualFold(filepath.Ext(target), ".md") {
				continue
			}
			if !anchors(target)[anchor] {
				t.Errorf("%s: link %q: %s has no heading whose anchor is #%s", where, l.target, filepath.ToSlash(target), anchor)
			}
		}
	}
	require.Positive(t, checked, "no relative links found: is the link pattern broken?")
}

func TestDocsSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Quick start: two commands":           "quick-start-two-commands",
		"Migrating from @torix/nestjs-kafka":  "migrating-from-torixnestjs-kafka",
		"The message goroutine's stack grows": "the-message-goroutines-stack-grows",
		"`KAFKA_BROKERS` and snake_case":      "kafka_brokers-and-snake_case",
		"[Unreleased]":                        "unreleased",
		"See [the docs](docs/x.md)":           "see-the-docs",
	} {
		assert.Equal(t, want, docsSlug(heading), heading)
	}
}

// docsEnvVariable matches an environment variable of the library.
var docsEnvVariable = regexp.MustCompile(`KAFKA_[A-Z0-9_]+`)

// docsEnvFromCode returns the values of the string constants of a Go file
// (config_env.go) that name KAFKA_* variables.
func docsEnvFromCode(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	vars := map[string]bool{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				if docsEnvVariable.FindString(s) == s {
					vars[s] = true
				}
			}
		}
	}
	require.NotEmpty(t, vars, "%s declares no string constant starting with KAFKA_: has the const block moved?", path)
	return vars
}

// docsTableFirstCell returns the first cell of a markdown table row, and
// false for a line that is not a row or is the delimiter row.
func docsTableFirstCell(line string) (string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") {
		return "", false
	}
	rest := line[1:]
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if rest[i] == '\\' {
			i++
			continue
		}
		if rest[i] == '|' {
			end = i
			break
		}
	}
	cell := strings.TrimSpace(rest[:end])
	if strings.Trim(cell, ":- ") == "" && strings.Contains(cell, "-") {
		return "", false
	}
	return cell, true
}

// docsEnvFromTable returns the KAFKA_* variables written in backticks in the
// first cell of the table rows of the configuration page, and for each the
// number of the table it is in (tables are counted from 1).
func docsEnvFromTable(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(docsConfiguration)
	require.NoError(t, err)
	vars := map[string]int{}
	table, inTable := 0, false
	for _, line := range docsProse(string(b)) {
		cell, ok := docsTableFirstCell(line)
		isRow := ok || strings.HasPrefix(strings.TrimSpace(line), "|")
		if isRow && !inTable {
			table++
		}
		inTable = isRow
		if !ok {
			continue
		}
		for _, span := range docsCodeSpan.FindAllString(cell, -1) {
			for _, v := range docsEnvVariable.FindAllString(span, -1) {
				vars[v] = table
			}
		}
	}
	return vars
}

func TestDocsConfigurationListsEveryEnvVariable(t *testing.T) {
	inCode := docsEnvFromCode(t, docsConfigEnvSource)
	inDocs := docsEnvFromTable(t)

	var undocumented, unknown []string
	for v := range inCode {
		if _, ok := inDocs[v]; !ok {
			undocumented = append(undocumented, v)
		}
	}
	tables := map[int]bool{}
	for v, table := range inDocs {
		tables[table] = true
		if !inCode[v] {
			unknown = append(unknown, v)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unknown)

	if len(undocumented) > 0 {
		t.Errorf("%s reads these variables, but the table in %s does not list them (add a row with the variable in backticks in the first column): %s",
			docsConfigEnvSource, docsConfiguration, strings.Join(undocumented, ", "))
	}
	if len(unknown) > 0 {
		t.Errorf("the table in %s lists these variables, but %s does not read them (remove the rows or fix the names): %s",
			docsConfiguration, docsConfigEnvSource, strings.Join(unknown, ", "))
	}
	if len(tables) != 1 {
		t.Errorf("%s lists the KAFKA_* variables in %d tables; keep them in one", docsConfiguration, len(tables))
	}
}

func TestDocsEnvFromCodeReadsTheConstants(t *testing.T) {
	src := "package p\n\nconst (\n\tenvA = \"KAFKA_A\"\n\tenvB, other = \"KAFKA_B_2\", \"OTHER\"\n\tprefix = \"KAFKA_\"\n)\n\nconst envC = `KAFKA_C`\n\nvar notConst = \"KAFKA_VAR\"\n"
	path := filepath.Join(t.TempDir(), "config_env.go")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	assert.Equal(t, map[string]bool{"KAFKA_A": true, "KAFKA_B_2": true, "KAFKA_C": true}, docsEnvFromCode(t, path))
}

func TestDocsREADMEIsShort(t *testing.T) {
	f, err := os.Open(docsREADME)
	require.NoError(t, err)
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines++
	}
	require.NoError(t, sc.Err())
	assert.LessOrEqual(t, lines, docsREADMEMaxLines,
		"%s has %d lines; keep it at most %d and move reference material to docs/", docsREADME, lines, docsREADMEMaxLines)
}

// TestDocsREADMETestExampleIsCompleteFile checks that the first Go code
// block of the README's "Testing your handlers" section is a whole test file
// a reader can copy: a package clause, imports and a Test function.
func TestDocsREADMETestExampleIsCompleteFile(t *testing.T) {
	b, err := os.ReadFile(docsREADME)
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")

	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "## Testing your handlers" })
	require.GreaterOrEqual(t, start, 0, `%s has no "## Testing your handlers" section`, docsREADME)
	var code []string
	open := false
	for _, l := range lines[start+1:] {
		if !open && strings.HasPrefix(l, "## ") {
			break
		}
		if !open && strings.TrimSpace(l) == "```go" {
			open = true
			continue
		}
		if open && strings.TrimSpace(l) == "```" {
			break
		}
		if open {
			code = append(code, l)
		}
	}
	require.NotEmpty(t, code, `the "Testing your handlers" section of %s has no Go code block`, docsREADME)

	f, err := parser.ParseFile(token.NewFileSet(), "README_example_test.go", strings.Join(code, "\n"), parser.SkipObjectResolution)
	require.NoError(t, err, "the first Go code block of \"Testing your handlers\" must be a complete Go file")
	imports := map[string]bool{}
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		require.NoError(t, err)
		imports[p] = true
	}
	assert.True(t, imports["testing"], "the example does not import testing")
	assert.True(t, imports["github.com/torix/kafkaevents/kafkatest"], "the example does not import kafkatest")

	hasTest := false
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Type.Params.NumFields() != 1 {
			continue
		}
		star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "T" {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "testing" {
				hasTest = true
			}
		}
	}
	assert.True(t, hasTest, "the example has no func TestXxx(t *testing.T)")
}
