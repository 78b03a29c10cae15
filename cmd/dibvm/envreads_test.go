package main_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// envReaders are the calls that read the process environment, directly or
// through the variables they consult (HOME, XDG_*).
var envReaders = []string{"Getenv", "LookupEnv", "Environ", "ExpandEnv", "UserHomeDir", "UserCacheDir", "UserConfigDir"}

// TestOnlyTheCommandLineReadsTheEnvironment holds settings to being read
// once: host/cli turns flags and the environment into typed values, and no
// host package below it reads the process environment behind its back
// (a build's environment is the one its options carry). The guest's
// programs read their own environment, which the host gave them.
func TestOnlyTheCommandLineReadsTheEnvironment(t *testing.T) {
	var found []string
	for _, root := range []string{"host", "elements", "vmimage"} {
		found = append(found, envReads(t, filepath.Join("../..", root), "../../host/cli")...)
	}
	for _, f := range found {
		t.Errorf("%s reads the process environment: read it in host/cli and pass the value down", f)
	}
}

// TestEnvReadsFindsOne keeps the check above able to fail.
func TestEnvReadsFindsOne(t *testing.T) {
	dir := t.TempDir()
	src := "package p\n\nimport \"os\"\n\nfunc a() string { return os.Getenv(\"X\") }\n\nfunc b() { _, _ = os.UserHomeDir() }\n"
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Tests may set up what they like.
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\n\nimport \"os\"\n\nvar _ = os.Environ()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := envReads(t, dir, "")
	want := []string{filepath.Join(dir, "p.go") + ":5: os.Getenv", filepath.Join(dir, "p.go") + ":7: os.UserHomeDir"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// envReads lists the calls of envReaders in the non-test Go files under
// root, skipping the directory skip, as "file:line: os.Name".
func envReads(t *testing.T, root, skip string) []string {
	t.Helper()
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == skip || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && slices.Contains(envReaders, sel.Sel.Name) {
				found = append(found, fset.Position(sel.Pos()).Filename+":"+strconv.Itoa(fset.Position(sel.Pos()).Line)+": os."+sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
