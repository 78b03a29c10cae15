package sha256sum

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sums are those sha256sum(1) prints for the same bytes.
var sums = []struct {
	name, content, sum string
}{
	{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	{"line", "hello\n", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
	{"large", strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range sums {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			sum, size, err := File(path)
			if err != nil || sum != tc.sum || size != int64(len(tc.content)) {
				t.Errorf("File = %s, %d, %v; want %s, %d, nil", sum, size, err, tc.sum, len(tc.content))
			}
		})
	}
}

// What is left of the reader is summed, not what was read before.
func TestReaderSumsTheRest(t *testing.T) {
	for _, tc := range sums {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader("skipped" + tc.content)
			io.CopyN(io.Discard, r, int64(len("skipped")))
			sum, n, err := Reader(r)
			if err != nil || sum != tc.sum || n != int64(len(tc.content)) {
				t.Errorf("Reader = %s, %d, %v; want %s, %d, nil", sum, n, err, tc.sum, len(tc.content))
			}
		})
	}
}

// What cannot be read gives its error, naming the file, and no sum.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	broken := errors.New("broken pipe")
	for _, tc := range []struct {
		name  string
		sum   func() (string, int64, error)
		is    error  // the error wrapped, if any
		names string // what the message names
	}{
		{"missing file", func() (string, int64, error) { return File(filepath.Join(dir, "missing")) }, fs.ErrNotExist, "missing"},
		{"directory", func() (string, int64, error) { return File(dir) }, nil, dir},
		{"failing reader", func() (string, int64, error) {
			return Reader(io.MultiReader(strings.NewReader("abc"), &failing{broken}))
		}, broken, "broken pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, _, err := tc.sum()
			if sum != "" || err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("got %q, %v; want no sum and an error naming %q", sum, err, tc.names)
			}
		})
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }
