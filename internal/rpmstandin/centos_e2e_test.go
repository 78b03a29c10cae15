//go:build e2e

package rpmstandin

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestE2ECentOSStreamRepo builds the whole CentOS Stream stand-in from
// Debian's mirror (downloads kept in the user's cache between runs) and
// checks it as far as the host can without installing anything.
func TestE2ECentOSStreamRepo(t *testing.T) {
	requireTools(t)
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	key := NewKey(t, "CentOS stand-in")
	start := time.Now()
	repo, u, err := CentOSStream(context.Background(), CentOSStreamSpec{
		Key:      key,
		Work:     t.TempDir(),
		Userland: UserlandSpec{CacheDir: filepath.Join(cache, "dibvm", "test-rpmstandin-debs")},
	}, filepath.Join(t.TempDir(), "baseos"))
	if err != nil {
		t.Fatal(err)
	}
	rpm, _ := os.Stat(repo.RPMs[UserlandPackage])
	t.Logf("built in %s: %d Debian packages, %d MiB unpacked, the userland rpm %d MiB",
		time.Since(start).Round(time.Second), len(u.Debs), u.Size>>20, rpm.Size()>>20)

	for name, file := range repo.RPMs {
		if err := checksig(t, key.Public, file); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := verifyRepomd(repo.Dir, key.Public); err != nil {
		t.Errorf("repomd.xml.asc: %v", err)
	}
	var names []string
	for _, p := range readPrimary(t, repo.Dir).Packages {
		names = append(names, p.Name)
	}
	want := []string{"basesystem", "filesystem", "setup", "centos-gpg-keys", "centos-stream-release", "centos-stream-repos", UserlandPackage}
	for _, r := range centosRequested {
		want = append(want, r.name)
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("primary.xml has no %s", w)
		}
	}
	checkLoader(t, u.Tree)
	for _, p := range []string{"usr/bin/sh", "usr/bin/dnf", "usr/bin/rpm", "etc/rpm/macros.dbpath", "etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Lstat(filepath.Join(u.Tree, p)); err != nil {
			t.Errorf("the userland: %v", err)
		}
	}
	for _, p := range []string{"usr/share/doc", "usr/share/man", "bin", "lib64", "etc/os-release", "usr/lib/os-release", "etc/debian_version"} {
		if _, err := os.Lstat(filepath.Join(u.Tree, p)); err == nil {
			t.Errorf("the userland has %s", p)
		}
	}
}

// checkLoader checks that bash's ELF interpreter is in the tree once
// the filesystem package's links are there, and libc in Debian's
// multiarch directory, which Debian's loader searches without a cache.
func checkLoader(t *testing.T, tree string) {
	f, err := elf.Open(filepath.Join(tree, "usr/bin/bash"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp = string(b[:len(b)-1])
		}
	}
	canon, ok := canonical(interp)
	if interp == "" || !ok {
		t.Fatalf("bash's interpreter: %q", interp)
	}
	if _, err := os.Stat(filepath.Join(tree, canon)); err != nil {
		t.Errorf("bash's interpreter %s: %v", interp, err)
	}
	libs, _ := filepath.Glob(filepath.Join(tree, "usr/lib/*-linux-gnu/libc.so.6"))
	if len(libs) != 1 {
		t.Errorf("libc.so.6 in the multiarch directory: %v", libs)
	}
}
