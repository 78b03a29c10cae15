package modprobe

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func writeIndex(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolve(t *testing.T) {
	dir := writeIndex(t, map[string]string{
		"modules.dep": "kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\n" +
			"kernel/drivers/block/loop.ko:\nkernel/fs/nls/nls_cp437.ko:\nkernel/crypto/crc32c_generic.ko:\n",
		"modules.builtin": "kernel/fs/ramfs/ramfs.ko\n",
		"modules.alias": "# Aliases extracted from modules themselves.\n" +
			"alias fs-xfs xfs\nalias xfs xfs\nalias block-major-7-* loop\nalias char-major-10-237 loop\n" +
			"alias devname:loop-control loop\nalias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n",
	})
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want []string
		err  bool
	}{
		{name: "xfs", want: []string{"xfs"}},
		{name: "fs-xfs", want: []string{"xfs"}},
		{name: "nls-cp437", want: []string{"nls_cp437"}}, // dashes and underscores are one
		{name: "block-major-7-3", want: []string{"loop"}},
		{name: "char-major-10-237", want: []string{"loop"}},
		{name: "crypto-crc32c", want: []string{"crc32c_generic"}},
		{name: "ramfs", want: nil},
		{name: "fs-nosuch", err: true},
		{name: "char-major-10-236", err: true},
	} {
		got, err := ix.Resolve(c.name)
		if c.err {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Resolve(%q) = %v, %v; want ErrNotFound", c.name, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Resolve(%q) = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestOpenNeedsModulesDep(t *testing.T) {
	if _, err := Open(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open without modules.dep: %v", err)
	}
}

func TestParseNode(t *testing.T) {
	for line, want := range map[string]Node{
		"loop loop-control c10:237":     {Module: "loop", Name: "loop-control", Mode: unix.S_IFCHR, Major: 10, Minor: 237},
		"dm_mod mapper/control c10:236": {Module: "dm_mod", Name: "mapper/control", Mode: unix.S_IFCHR, Major: 10, Minor: 236},
		"brd ram0 b1:0":                 {Module: "brd", Name: "ram0", Mode: unix.S_IFBLK, Major: 1, Minor: 0},
	} {
		got, err := ParseNode(line)
		if err != nil || got != want {
			t.Errorf("ParseNode(%q) = %+v, %v; want %+v", line, got, err, want)
		}
	}
	for _, line := range []string{"loop loop-control", "loop loop-control x10:237", "loop loop-control c10", "loop ../etc/x c1:1", "loop x c-1:1"} {
		if n, err := ParseNode(line); err == nil {
			t.Errorf("ParseNode(%q) = %+v, want an error", line, n)
		}
	}
}

func TestMainRefusesWhatItCannotDo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage: modprobe"},
		{[]string{"-q"}, "usage: modprobe"},
		{[]string{"-r", "loop"}, "option -r is not supported"},
		{[]string{"loop", "max_loop=64"}, "module parameters (max_loop=64) are not supported"},
	} {
		var stderr strings.Builder
		if code := Main(c.args, &stderr); code != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("modprobe %q: exit %d, %q; want exit 1 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func TestName(t *testing.T) {
	for file, want := range map[string]string{
		"kernel/fs/xfs/xfs.ko":          "xfs",
		"kernel/fs/xfs/xfs.ko.xz":       "xfs",
		"kernel/crypto/crc32c-intel.ko": "crc32c_intel",
		" nls_cp437 ":                   "nls_cp437",
	} {
		if got := Name(file); got != want {
			t.Errorf("Name(%q) = %q, want %q", file, got, want)
		}
	}
}
