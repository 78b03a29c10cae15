package hostpath

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// readTar maps each entry of a loan's tar to its content, or "->target"
// for a symlink and "/" for a directory.
func readTar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "/"
		case tar.TypeSymlink:
			out[h.Name] = "->" + h.Linkname
		default:
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

// A file and a directory are packed under their own base names, with
// the symlinks that stay inside the directory, and nothing beside them.
func TestLend(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "apt.conf"), "APT::Get::Assume-Yes true;\n")
	write(t, filepath.Join(dir, "secret"), "not named")
	write(t, filepath.Join(dir, "keys", "a.gpg"), "key a")
	write(t, filepath.Join(dir, "keys", "sub", "b.gpg"), "key b")
	os.Symlink("sub/b.gpg", filepath.Join(dir, "keys", "b-link"))
	os.Symlink("gone", filepath.Join(dir, "keys", "dangling"))
	t.Chdir(dir)

	l := NewLender()
	file, err := l.Lend("DIB_APT_CONF", []string{"./apt.conf"}, File, "apt.conf")
	if err != nil {
		t.Fatal(err)
	}
	if file.Value != "/build/lent/lent0.tar/0/apt.conf" || file.Paths[0] != filepath.Join(dir, "apt.conf") {
		t.Errorf("file loan %+v", file)
	}
	if got := readTar(t, file.Tar); len(got) != 2 || got["0/apt.conf"] != "APT::Get::Assume-Yes true;\n" {
		t.Errorf("file tar %v", got)
	}
	tree, err := l.Lend("KEYS", []string{filepath.Join(dir, "keys")}, FileOrDir, "keys")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"0/": "/", "0/keys/": "/", "0/keys/a.gpg": "key a", "0/keys/sub/": "/",
		"0/keys/sub/b.gpg": "key b", "0/keys/b-link": "->sub/b.gpg", "0/keys/dangling": "->gone"}
	got := readTar(t, tree.Tar)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("directory tar has %v", got)
	}
	if tree.Input != "lent1.tar" || tree.Value != "/build/lent/lent1.tar/0/keys" || len(l.Loans()) != 2 {
		t.Errorf("directory loan %+v", tree)
	}
	if again, _ := NewLender().Lend("X", []string{filepath.Join(dir, "keys")}, Dir, "x"); again.Digest != tree.Digest {
		t.Error("the same directory packed twice differs: checkpoints would miss")
	}
	if _, err := l.Lend("KEYS", []string{filepath.Join(dir, "keys")}, Dir, "keys"); err == nil {
		t.Error("a variable lent twice")
	}
}

// What a variable cannot lend is refused with the variable, the path
// and why in the error.
func TestLendRefuses(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f"), "x")
	write(t, filepath.Join(dir, "out", "secret"), "s")
	write(t, filepath.Join(dir, "up", "ok"), "ok")
	os.Symlink("../out/secret", filepath.Join(dir, "up", "link"))
	write(t, filepath.Join(dir, "abs", "ok"), "ok")
	os.Symlink(filepath.Join(dir, "out", "secret"), filepath.Join(dir, "abs", "link"))
	write(t, filepath.Join(dir, "via", "ok"), "ok")
	os.Symlink("../out", filepath.Join(dir, "via", "hop"))
	os.Mkdir(filepath.Join(dir, "pipe"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	f.Truncate(DefaultLimits.Bytes + 1) // sparse: refused by its size, unread
	f.Close()
	many := filepath.Join(dir, "many")
	for i := range 5 {
		write(t, filepath.Join(many, strings.Repeat("x", i+1)), "")
	}

	for _, c := range []struct {
		path   string
		kind   Kind
		limits Limits
		want   string
	}{
		{filepath.Join(dir, "nope"), File, DefaultLimits, "no such file or directory here: the variable names a file on this machine"},
		{dir, File, DefaultLimits, "is a directory, and the variable names a file"},
		{filepath.Join(dir, "f"), Dir, DefaultLimits, "is a file, and the variable names a directory"},
		{filepath.Join(dir, "up"), Dir, DefaultLimits, "link -> ../out/secret: the symlink leads outside the directory"},
		{filepath.Join(dir, "abs"), Dir, DefaultLimits, "an absolute symlink leads outside the directory"},
		{filepath.Join(dir, "via"), FileOrDir, DefaultLimits, "hop -> ../out: the symlink leads outside the directory"},
		{filepath.Join(dir, "pipe"), Dir, DefaultLimits, "fifo: is a named pipe"},
		{filepath.Join(dir, "fifo"), FileOrDir, DefaultLimits, "is a named pipe, and the variable names a file or directory"},
		{big, File, DefaultLimits, "more than the 512 MiB a build may borrow"},
		{many, Dir, Limits{Bytes: 1 << 20, Entries: 5}, "more than the 5 files and directories"},
	} {
		l := &Lender{Limits: c.limits}
		_, err := l.Lend("MY_VAR", []string{c.path}, c.kind, "what it is for")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "MY_VAR="+c.path+" (what it is for): ") {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
		if len(l.Loans()) != 0 {
			t.Errorf("%s: a refused loan was kept", c.path)
		}
	}
}

// The limits count all of a build's loans together.
func TestLendLimitsAreTheBuilds(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), strings.Repeat("a", 600))
	write(t, filepath.Join(dir, "b"), strings.Repeat("b", 600))
	l := &Lender{Limits: Limits{Bytes: 1000, Entries: 100}}
	if _, err := l.Lend("A", []string{filepath.Join(dir, "a")}, File, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lend("B", []string{filepath.Join(dir, "b")}, File, "b"); err == nil || !strings.Contains(err.Error(), "may borrow") {
		t.Errorf("two loans over the limit together: %v", err)
	}
}
