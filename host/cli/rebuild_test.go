package cli

import (
	"archive/tar"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// statementOf writes a statement of outputs (name to content) into dir,
// as a build of b would, and returns its path.
func statementOf(t *testing.T, dir string, b provenance.Build, outputs map[string]string, lock string) string {
	t.Helper()
	var subjects []provenance.Output
	for _, name := range slices.Sorted(maps.Keys(outputs)) {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(outputs[name]), 0o644)
		sum, _, _ := sha256sum.File(path)
		subjects = append(subjects, provenance.Output{Resource: provenance.Resource{Name: name, Digest: map[string]string{"sha256": sum}}, Lock: name == lock})
	}
	st, err := provenance.Make(b, subjects)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := st.Marshal()
	path := filepath.Join(dir, "img.provenance.json")
	os.WriteFile(path, data, 0o644)
	return path
}

// The command line a statement is built again with: its elements, types,
// settings (a withheld one's value from the caller, which must have it;
// the builder's cache path not), epoch, seed, flags and lock.
func TestRebuildCommand(t *testing.T) {
	dir := t.TempDir()
	epoch := int64(1700000000)
	spec := &api.Spec{ImageName: "img", Elements: []string{"base", "vm", "debian-minimal"}, Arch: "amd64", Types: []string{"qcow2", "tar"},
		Env:             map[string]string{"DIB_RELEASE": "bookworm", "DIB_DEV_USER_PASSWORD": "hunter2", "DIB_IMAGE_CACHE": "/home/builder/.cache", "FOO": "bar", "EMPTY": ""},
		SourceDateEpoch: &epoch, Packages: []string{"vim", "git"}, ImageSizeGB: 3}
	b := provenance.Build{Spec: spec, Secret: func(name, _ string) bool { return strings.Contains(name, "PASSWORD") }, Seed: "s1", QemuImgOptions: "compat=1.1"}
	statement := statementOf(t, dir, b, map[string]string{"img.qcow2": "q", "img.lock": "{}"}, "img.lock")
	r := &rebuildFlags{dir: filepath.Join(t.TempDir(), "again")}
	rb, err := r.read(os.Stdout, statement)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's settings of the build go, but for where its image
	// cache is.
	caller := []string{"PATH=/usr/bin", "HOME=/root", "ELEMENTS_PATH=/elements", "DIB_RELEASE=trixie", "DIB_OTHER=x", "DIB_DEV_USER_PASSWORD=hunter2", "SOURCE_DATE_EPOCH=1",
		"FS_TYPE=xfs", "MKFS_OPTS=-b 1024", "EMPTY=mine", "DIB_IMAGE_CACHE=/home/me/cache"}
	args, env, err := rb.command("/out/img", caller)
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"-o", "/out/img", "-t", "qcow2,tar", "-a", "amd64", "-n", "--no-host-env", "--progress", "plain", "--seed", "s1",
		"--packages-from", filepath.Join(dir, "img.lock"), "-p", "vim,git", "--image-size", "3", "--qemu-img-options", "compat=1.1",
		"--env", "DIB_DEV_USER_PASSWORD", "--env", "DIB_RELEASE", "--env", "EMPTY", "--env", "FOO", "--", "base", "vm", "debian-minimal"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("args %q\nwant %q", args, wantArgs)
	}
	wantEnv := []string{"PATH=/usr/bin", "HOME=/root", "ELEMENTS_PATH=/elements", "DIB_IMAGE_CACHE=/home/me/cache", "DIB_DEV_USER_PASSWORD=hunter2", "DIB_RELEASE=bookworm", "EMPTY=", "FOO=bar", "SOURCE_DATE_EPOCH=1700000000"}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("env %q\nwant %q", env, wantEnv)
	}
	if _, _, err := rb.command("/out/img", []string{"PATH=/usr/bin"}); err == nil || !strings.Contains(err.Error(), "DIB_DEV_USER_PASSWORD were withheld from the statement as secret-shaped: set them in the environment") {
		t.Errorf("a withheld setting not in the environment: %v", err)
	}
}

// What cannot be rebuilt is refused before anything starts.
func TestRebuildRefuses(t *testing.T) {
	dir := t.TempDir()
	spec := &api.Spec{ImageName: "img", Elements: []string{"vm"}, Arch: "amd64", Types: []string{"raw"}, Env: map[string]string{}}
	statement := statementOf(t, dir, provenance.Build{Spec: spec}, map[string]string{"img.raw": "r", "img.lock": "{}"}, "img.lock")
	for _, tc := range []struct {
		name string
		r    rebuildFlags
		prep func()
		want string
	}{
		{"no -o", rebuildFlags{}, nil, "-o DIR: give the directory"},
		{"-o the statement's", rebuildFlags{dir: dir}, nil, "the statement's own directory"},
		{"the lock changed", rebuildFlags{dir: t.TempDir()}, func() { os.WriteFile(filepath.Join(dir, "img.lock"), []byte("{ }"), 0o644) }, "the lock file " + filepath.Join(dir, "img.lock") + " has changed since the build"},
		{"the lock gone", rebuildFlags{dir: t.TempDir()}, func() { os.Remove(filepath.Join(dir, "img.lock")) }, "the packages cannot be had again without it"},
	} {
		if tc.prep != nil {
			tc.prep()
		}
		if _, err := tc.r.read(os.Stdout, statement); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A statement is anyone's: its names may not read as flags or paths.
	for _, bad := range []struct {
		spec *api.Spec
		want string
	}{
		{&api.Spec{ImageName: "img", Elements: []string{"vm", "--logfile=/tmp/x"}, Arch: "amd64", Types: []string{"raw"}}, `element "--logfile=/tmp/x": not an element's name`},
		{&api.Spec{ImageName: "../../elsewhere/img", Elements: []string{"vm"}, Arch: "amd64", Types: []string{"raw"}}, `image name "../../elsewhere/img": not a file name`},
		{&api.Spec{ImageName: "img", Elements: []string{"vm"}, Arch: "amd64", Types: []string{"raw,--allow-net=0.0.0.0/0"}}, "not a type"},
	} {
		st := statementOf(t, t.TempDir(), provenance.Build{Spec: bad.spec}, map[string]string{"img.raw": "r"}, "")
		r := rebuildFlags{dir: t.TempDir()}
		if _, err := r.read(os.Stdout, st); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want %q", bad.spec, err, bad.want)
		}
	}
	lent := statementOf(t, t.TempDir(), provenance.Build{Spec: spec, HostFiles: map[string]string{"DIB_FILE": "abc"}}, map[string]string{"img.raw": "r"}, "")
	r := rebuildFlags{dir: t.TempDir()}
	if _, err := r.read(os.Stdout, lent); err == nil || !strings.Contains(err.Error(), "borrowed host files (DIB_FILE)") {
		t.Errorf("host files: %v", err)
	}
}

// Each output built again is compared with the statement; where one
// differs, the list says which files in it do.
func TestRebuildCompare(t *testing.T) {
	orig, again := t.TempDir(), t.TempDir()
	writeTar(t, filepath.Join(orig, "img.tar"), map[string]string{"./etc/hostname": "a", "./etc/same": "s"})
	tarData, _ := os.ReadFile(filepath.Join(orig, "img.tar"))
	spec := &api.Spec{ImageName: "img", Elements: []string{"vm"}, Arch: "amd64", Types: []string{"raw", "tar"}, Env: map[string]string{}}
	statement := statementOf(t, orig, provenance.Build{Spec: spec}, map[string]string{"img.raw": "raw", "img.tar": string(tarData)}, "")
	rb := &rebuild{statement: statement}
	var err error
	if rb.st, err = provenance.Read(statement); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(again, "img.raw"), []byte("raw"), 0o644)
	writeTar(t, filepath.Join(again, "img.tar"), map[string]string{"./etc/hostname": "b", "./etc/same": "s"})
	var out strings.Builder
	err = rb.compare(&out, again)
	if !errors.Is(err, exitCode(1)) {
		t.Errorf("compare: %v", err)
	}
	for _, want := range []string{"img.raw: the same", "img.tar: DIFFERS", "    /etc/hostname: content differs", "1 of 2 files differ"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare does not say %q:\n%s", want, out.String())
		}
	}
	writeTar(t, filepath.Join(again, "img.tar"), map[string]string{"./etc/hostname": "a", "./etc/same": "s"})
	out.Reset()
	if err := rb.compare(&out, again); err != nil || !strings.Contains(out.String(), "OK: all 2 files are the same bytes") {
		t.Errorf("compare of the same: %v\n%s", err, out.String())
	}
}

// writeTar writes a tar of files, in order of name, with no times.
func writeTar(t *testing.T, name string, files map[string]string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, n := range slices.Sorted(maps.Keys(files)) {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
