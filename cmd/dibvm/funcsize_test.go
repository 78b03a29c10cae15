package main_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function may be, from its func line to its
// closing brace: past it, a function does several things that want names.
const maxFuncLines = 80

// TestNoLongFunctions holds every non-test Go function of the module to
// maxFuncLines, function literals counted in the function that holds them.
func TestNoLongFunctions(t *testing.T) {
	long, err := longFunctions("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range long {
		t.Errorf("%s is %d lines, over %d: split it into named steps", f.name, f.lines, maxFuncLines)
	}
}

// TestLongFunctionsFindsOne keeps the check above able to fail: of two
// functions, one at the limit and one a line past it, it names the second
// alone, and a literal outside any function is measured on its own.
func TestLongFunctionsFindsOne(t *testing.T) {
	dir := t.TempDir()
	body := func(lines int) string { // a function of exactly lines lines
		return strings.Repeat("\t_ = 0\n", lines-2)
	}
	src := "package p\n\n" +
		"func atLimit() {\n" + body(maxFuncLines) + "}\n\n" +
		"type T struct{}\n\n" +
		"func (T) overLimit() {\n\tf := func() {\n" + body(maxFuncLines-1) + "\t}\n\tf()\n}\n\n" +
		"var literal = func() {\n" + body(maxFuncLines+1) + "}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Test files and testdata are not held to the limit.
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\n\nfunc long() {\n"+body(200)+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testdata", "q.go"), []byte("package q\n\nfunc long() {\n"+body(200)+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	long, err := longFunctions(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(long)
	want := fmt.Sprintf("[{p.go: T.overLimit %d} {p.go: func literal at line %d %d}]", maxFuncLines+2, 2*maxFuncLines+9, maxFuncLines+1)
	if got != want {
		t.Errorf("longFunctions = %s, want %s", got, want)
	}
}

// longFunc is a function over maxFuncLines: its "file: name" and length.
type longFunc struct {
	name  string
	lines int
}

// longFunctions lists the functions over maxFuncLines in the non-test Go
// files under root, named by the file's path relative to root. A function
// literal outside any function declaration is measured on its own.
func longFunctions(root string) ([]longFunc, error) {
	var long []longFunc
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// What the go tool ignores, and the fixtures of tests.
			if path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		ast.Inspect(f, func(n ast.Node) bool {
			var name string
			switch n := n.(type) {
			case *ast.FuncDecl:
				name = funcName(n)
			case *ast.FuncLit:
				name = fmt.Sprintf("func literal at line %d", fset.Position(n.Pos()).Line)
			default:
				return true
			}
			if lines := fset.Position(n.End()).Line - fset.Position(n.Pos()).Line + 1; lines > maxFuncLines {
				long = append(long, longFunc{rel + ": " + name, lines})
			}
			return false // what is inside counts toward this function
		})
		return nil
	})
	sort.Slice(long, func(i, j int) bool { return long[i].name < long[j].name })
	return long, err
}

// funcName is a function's name, a method's as Type.Method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	for {
		switch t := typ.(type) {
		case *ast.StarExpr:
			typ = t.X
			continue
		case *ast.IndexExpr: // a generic type's receiver, T[E]
			typ = t.X
			continue
		case *ast.IndexListExpr:
			typ = t.X
			continue
		case *ast.Ident:
			return t.Name + "." + fd.Name.Name
		}
		return fd.Name.Name
	}
}
