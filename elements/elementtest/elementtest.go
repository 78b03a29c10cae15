// Package elementtest writes element trees for tests, from a map of
// path to content. It is imported by tests only: the element package's
// own and the command's, which run dibvm on the trees. Nothing written
// here is ever run on the host.
package elementtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteTree writes files (path -> content; a trailing "*" on the path
// makes the file executable) under a new temporary directory of t, and
// returns the directory.
func WriteTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		perm := os.FileMode(0o644)
		if strings.HasSuffix(p, "*") {
			p, perm = strings.TrimSuffix(p, "*"), 0o755
		}
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
