package kafkaevents_test

import (
	"bufio"
	"flag"
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

	"github.com/torix/kafkaevents"
)

// The documentation tests keep the markdown files true to the repository:
// links resolve, the variable table matches the code, and the README stays
// short. They read files relative to the repository root, which is the
// directory of this package.

const (
	docsREADME          = "README.md"
	docsConfiguration   = "docs/configuration.md"
	docsConfigEnvSource = "config_env.go"
	docsConfigSource    = "config.go"
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

// docsUpdate rewrites the generated table of docs/configuration.md instead
// of checking it: go test -run TestDocsConfiguration . -update-docs
var docsUpdate = flag.Bool("update-docs", false, "rewrite the table of "+docsConfiguration+" from configFields instead of checking it")

// docsConfigTableHeader is the first line of the generated table.
const docsConfigTableHeader = "| Variable | Field | Default | Notes |"

// docsConfigTable renders configFields as the table of the configuration
// page: one row per field, "—" for a field without a variable.
func docsConfigTable() string {
	var b strings.Builder
	b.WriteString(docsConfigTableHeader + "\n|---|---|---|---|\n")
	for _, r := range kafkaevents.ConfigTableRows() {
		env := "—"
		if r.Env != "" {
			env = "`" + r.Env + "`"
		}
		b.WriteString("|")
		for _, cell := range []string{env, "`" + r.Field + "`", r.Default, r.Notes} {
			if cell != "" {
				b.WriteString(" " + cell)
			}
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// docsConfigTableSpan returns where the generated table starts and ends in
// the configuration page.
func docsConfigTableSpan(t *testing.T, page string) (start, end int) {
	t.Helper()
	start = strings.Index(page, "\n"+docsConfigTableHeader+"\n")
	require.GreaterOrEqual(t, start, 0, "%s has no line %q: the generated table starts there", docsConfiguration, docsConfigTableHeader)
	start++
	end = start
	for end < len(page) && page[end] == '|' {
		next := strings.IndexByte(page[end:], '\n')
		if next < 0 {
			return start, len(page)
		}
		end += next + 1
	}
	return start, end
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

// TestDocsConfigurationListsEveryEnvVariable checks that the table of the
// configuration page is the one configFields in config_env.go generates, and
// that no other table of the page names a variable the code does not read.
func TestDocsConfigurationListsEveryEnvVariable(t *testing.T) {
	b, err := os.ReadFile(docsConfiguration)
	require.NoError(t, err)
	page := string(b)
	start, end := docsConfigTableSpan(t, page)
	want := docsConfigTable()
	if *docsUpdate {
		require.NoError(t, os.WriteFile(docsConfiguration, []byte(page[:start]+want+page[end:]), 0o600))
		page = page[:start] + want + page[end:]
	}
	assert.Equal(t, want, page[start:end],
		"the table in %s is generated from configFields in %s: edit the rows there and run go test -run TestDocsConfigurationListsEveryEnvVariable . -update-docs",
		docsConfiguration, docsConfigEnvSource)

	inCode := map[string]bool{}
	for _, r := range kafkaevents.ConfigTableRows() {
		if r.Env != "" {
			inCode[r.Env] = true
		}
	}
	require.NotEmpty(t, inCode, "configFields declares no variable")
	inDocs := docsEnvFromTable(t)
	var unknown []string
	tables := map[int]bool{}
	for v, table := range inDocs {
		tables[table] = true
		if !inCode[v] {
			unknown = append(unknown, v)
		}
	}
	slices.Sort(unknown)
	if len(unknown) > 0 {
		t.Errorf("the tables in %s list these variables, but configFields in %s does not declare them (remove the rows or fix the names): %s",
			docsConfiguration, docsConfigEnvSource, strings.Join(unknown, ", "))
	}
	if len(tables) != 1 {
		t.Errorf("%s lists the KAFKA_* variables in %d tables; keep them in one", docsConfiguration, len(tables))
	}
}

// TestDocsConfigFieldsNameTheirVariable checks that the documentation of
// each field in config.go names the variable configFields declares for it,
// and no other.
func TestDocsConfigFieldsNameTheirVariable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), docsConfigSource, nil, parser.ParseComments|parser.SkipObjectResolution)
	require.NoError(t, err)
	structs := map[string]*ast.StructType{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok {
			if st, ok := ts.Type.(*ast.StructType); ok {
				structs[ts.Name.Name] = st
			}
		}
		return true
	})
	// docOf returns the doc comment of the field at path, starting at Config.
	docOf := func(path string) (string, bool) {
		st := structs["Config"]
		parts := strings.Split(path, ".")
		for i, name := range parts {
			var field *ast.Field
			for _, fl := range st.Fields.List {
				for _, n := range fl.Names {
					if n.Name == name {
						field = fl
					}
				}
			}
			if field == nil {
				return "", false
			}
			if i == len(parts)-1 {
				return field.Doc.Text(), true
			}
			ident, ok := field.Type.(*ast.Ident)
			if !ok || structs[ident.Name] == nil {
				return "", false
			}
			st = structs[ident.Name]
		}
		return "", false
	}
	for _, r := range kafkaevents.ConfigTableRows() {
		doc, ok := docOf(r.Field)
		if !assert.True(t, ok, "%s declares no field %s", docsConfigSource, r.Field) {
			continue
		}
		named := docsEnvVariable.FindAllString(doc, -1)
		if r.Env == "" {
			assert.Empty(t, named, "the documentation of %s names a variable, but configFields declares none for it", r.Field)
			continue
		}
		assert.Equal(t, []string{r.Env}, slices.Compact(named), "the documentation of %s in %s must name its variable, %s (\"Environment: %s.\")", r.Field, docsConfigSource, r.Env, r.Env)
	}
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
