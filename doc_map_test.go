package kafkaevents_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocMapNamesEveryFileAndPackage: the Map of doc.go names every file of
// the root package (config*.go stands for the config files) and every
// package of the module, and names no file that does not exist.
func TestDocMapNamesEveryFileAndPackage(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	doc := string(src)

	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "config") || f == "doc.go" {
			continue
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(f) + `\b`).MatchString(doc) {
			t.Errorf("doc.go does not name the root file %s", f)
		}
	}
	root := regexp.MustCompile(`(?m)^//   - ([a-z_]+\.go)\b|(?:; |: )([a-z_]+\.go):`)
	for _, m := range root.FindAllStringSubmatch(doc, -1) {
		name := m[1] + m[2]
		if _, err := os.Stat(name); err != nil {
			t.Errorf("doc.go names the root file %s, which does not exist", name)
		}
	}

	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == "." {
			return err
		}
		switch d.Name() {
		case "testdata", "docs", "scripts", "docker", "node_modules":
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		gofiles, _ := filepath.Glob(filepath.Join(path, "*.go"))
		if len(gofiles) == 0 {
			return nil
		}
		// A package inside another one (examples/orders, health/ui) is
		// named by its parent.
		for parent := filepath.Dir(path); parent != "."; parent = filepath.Dir(parent) {
			if strings.Contains(doc, filepath.ToSlash(parent)) && !strings.HasPrefix(path, "internal") {
				return nil
			}
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(filepath.ToSlash(path)) + `\b`).MatchString(doc) {
			t.Errorf("doc.go does not name the package %s", filepath.ToSlash(path))
		}
		return nil
	})
	require.NoError(t, err)
}
