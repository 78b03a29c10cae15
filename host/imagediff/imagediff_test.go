package imagediff

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTar(t *testing.T, name string, files map[string]string, modes map[string]int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mode := modes[n]
		if mode == 0 {
			mode = 0o644
		}
		tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
}

// Two tars are compared entry by entry: what is in one only, and what
// of an entry in both differs.
func TestCompareTars(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	writeTar(t, a, map[string]string{"./etc/hostname": "a", "./etc/same": "s", "./etc/gone": "g", "./bin/x": "x"}, nil)
	writeTar(t, b, map[string]string{"./etc/hostname": "b", "./etc/same": "s", "./etc/new": "n", "./bin/x": "x"}, map[string]int64{"./bin/x": 0o755})
	got, err := Compare(context.Background(), "tar", a, b, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Difference{{"/bin/x", "mode differs"}, {"/etc/gone", "only in the first"}, {"/etc/hostname", "content differs"}, {"/etc/new", "only in the second"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// disk makes a raw disk with an MBR and one ext4 partition at 1 MiB
// holding the files of tree, as mkfs.ext4 -d makes it.
func disk(t *testing.T, name string, tree map[string]string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tree")
	for p, content := range tree {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			os.Symlink(target, filepath.Join(src, p))
			continue
		}
		os.WriteFile(filepath.Join(src, p), []byte(content), 0o644)
	}
	// A directory its owner may not write to, as images have
	// (/usr/share/empty): copied out by an ordinary user all the same.
	os.Chmod(filepath.Join(src, "ro"), 0o555)
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "ro"), 0o755) })
	fs := name + ".fs"
	os.WriteFile(fs, nil, 0o644)
	os.Truncate(fs, 8<<20)
	cmd := exec.Command("mkfs.ext4", "-q", "-U", "5a8e2f1c-0000-4000-8000-000000000001", "-E", "hash_seed=5a8e2f1c-0000-4000-8000-000000000002", "-d", src, fs)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(fs)
	os.Remove(fs)
	head := make([]byte, 1<<20)
	head[510], head[511] = 0x55, 0xaa
	e := head[446:]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(data)/512))
	if err := os.WriteFile(name, append(head, data...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Two disk images, raw or qcow2, are compared by the files of their ext4
// partitions.
func TestCompareDisks(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "debugfs", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-deps.sh installs it)", tool)
		}
	}
	dir := t.TempDir()
	// Links in the image lead to the host's files: nothing is written
	// through them.
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("the host's\n"), 0o644)
	a, b := filepath.Join(dir, "a.raw"), filepath.Join(dir, "b.raw")
	disk(t, a, map[string]string{"etc/hostname": "a", "etc/same": "s", "var/log/old": "o", "ro/kept": "k", "ro/changed": "1", "etc/link": "-> " + victim, "bin/sh": "-> dash"})
	disk(t, b, map[string]string{"etc/hostname": "b", "etc/same": "s", "var/log/new": "n", "ro/kept": "k", "ro/changed": "2", "etc/link": "-> " + victim + "2", "bin/sh": "-> dash"})
	want := []Difference{{"p1:/etc/hostname", "content differs"}, {"p1:/etc/link", "link target differs"}, {"p1:/ro/changed", "content differs"}, {"p1:/var/log/new", "only in the second"}, {"p1:/var/log/old", "only in the first"}}
	got, err := Compare(context.Background(), "raw", a, b, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("raw: got %v\nwant %v", got, want)
	}
	for _, n := range []string{a, b} {
		if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", n, n+".qcow2").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v\n%s", err, out)
		}
	}
	got, err = Compare(context.Background(), "qcow2", a+".qcow2", b+".qcow2", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("qcow2: got %v\nwant %v", got, want)
	}
	if same, err := Compare(context.Background(), "raw", a, a, dir); err != nil || len(same) != 0 {
		t.Errorf("an image against itself: %v, %v", same, err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "the host's\n" {
		t.Errorf("a file a link in the image leads to was written: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "imagediff-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
