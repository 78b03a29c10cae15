package rpmstandin

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCanonicalFollowsTheFilesystemPackagesLinks(t *testing.T) {
	for in, want := range map[string]string{
		"./bin/ls":                         "usr/bin/ls",
		"./lib64/ld-linux-x86-64.so.2":     "usr/lib64/ld-linux-x86-64.so.2",
		"./lib/x86_64-linux-gnu/libc.so.6": "usr/lib/x86_64-linux-gnu/libc.so.6",
		"./var/run/sudo":                   "run/sudo",
		"./var/lock/subsys":                "run/lock/subsys",
		"./usr/bin/bash":                   "usr/bin/bash",
		"./binaries/x":                     "binaries/x",
		"./var/runner":                     "var/runner",
	} {
		if got, ok := canonical(in); !ok || got != want {
			t.Errorf("canonical(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"./", "./bin", "./lib64/", "./var/run/"} {
		if got, ok := canonical(in); ok {
			t.Errorf("canonical(%q) = %q: the filesystem package's link itself is kept", in, got)
		}
	}
	if keepPath("usr/share/doc/bash/copyright") || keepPath("usr/share/man") || !keepPath("usr/share/docker") {
		t.Error("keepPath drops the wrong paths")
	}
}

// TestStagerKeepsWhatTheTreeCannotHold stages entries as Debian's
// packages have them and checks what is recorded for the rpm.
func TestStagerKeepsWhatTheTreeCannotHold(t *testing.T) {
	s := &stager{root: t.TempDir(), attrs: map[string]Attr{}}
	add := func(name string, typ byte, mode int64, uname, gname, link, data string) {
		t.Helper()
		hdr := &tar.Header{Name: name, Typeflag: typ, Mode: mode, Uname: uname, Gname: gname, Linkname: link, Size: int64(len(data))}
		p, ok := canonical(name)
		if !ok {
			t.Fatalf("%s is dropped", name)
		}
		if err := s.add(p, hdr, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	add("./etc/sudoers", tar.TypeReg, 0o440, "root", "root", "", "root ALL=(ALL) ALL\n")
	add("./usr/bin/sudo", tar.TypeReg, 0o4755, "root", "root", "", "sudo")
	add("./usr/bin/chage", tar.TypeReg, 0o2755, "root", "shadow", "", "chage")
	add("./usr/bin/plain", tar.TypeReg, 0o755, "root", "root", "", "plain")
	add("./var/lib/sudo/", tar.TypeDir, 0o700, "root", "root", "", "")
	add("./bin/sh", tar.TypeSymlink, 0o777, "root", "root", "dash", "")
	add("./usr/bin/chage2", tar.TypeLink, 0, "root", "shadow", "./usr/bin/chage", "")
	want := map[string]Attr{
		"/etc/sudoers":    {Mode: 0o440},
		"/usr/bin/sudo":   {Mode: fs.ModeSetuid | 0o755},
		"/usr/bin/chage":  {Mode: fs.ModeSetgid | 0o755, Group: "shadow"},
		"/usr/bin/chage2": {Mode: fs.ModeSetgid | 0o755, Group: "shadow"},
		"/var/lib/sudo":   {Mode: 0o700},
	}
	for p, a := range want {
		if got := s.attrs[p]; got != a {
			t.Errorf("attrs[%s] = %+v, want %+v", p, got, a)
		}
	}
	if a, ok := s.attrs["/usr/bin/plain"]; ok {
		t.Errorf("a plain root file has attrs %+v", a)
	}
	if target, err := os.Readlink(filepath.Join(s.root, "usr/bin/sh")); err != nil || target != "dash" {
		t.Errorf("usr/bin/sh: %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(s.root, "var/lib/sudo")); err != nil || fi.Mode().Perm()&0o700 != 0o700 {
		t.Errorf("a directory the user cannot write into: %v %v", fi.Mode(), err)
	}
	if s.size != int64(len("root ALL=(ALL) ALL\nsudochageplain")) {
		t.Errorf("size %d", s.size)
	}
}

// fakeUserland is a userland tree with what the CentOS stand-in reads
// and what it takes out again, without Debian's mirror.
func fakeUserland(t *testing.T) *Userland {
	t.Helper()
	root := t.TempDir()
	s := &stager{root: root, attrs: map[string]Attr{}}
	for p, data := range map[string]string{
		"usr/share/base-passwd/passwd.master": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
		"usr/share/base-passwd/group.master":  "root:x:0:\nshadow:x:42:\n",
		"usr/lib/os-release":                  "ID=debian\n",
		"etc/debian_version":                  "13.2\n",
		"usr/bin/bash":                        "bash",
	} {
		if err := s.writeFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.symlink("../usr/lib/os-release", "etc/os-release")
	s.symlink("bash", "usr/bin/sh")
	return &Userland{Tree: root, Attrs: s.attrs, Debs: []string{"bash=5.2"}}
}

func TestCentOSStreamLayout(t *testing.T) {
	requireTools(t)
	key := NewKey(t, "CentOS stand-in")
	u := fakeUserland(t)
	repo, err := CentOSStreamFrom(context.Background(), CentOSStreamSpec{Key: key, Work: t.TempDir()}, u, filepath.Join(t.TempDir(), "baseos"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release", "etc/debian_version"} {
		if _, err := os.Lstat(filepath.Join(u.Tree, p)); err == nil {
			t.Errorf("the userland still has %s, which the release package ships or CentOS lacks", p)
		}
	}
	byName := map[string]int{}
	prim := readPrimary(t, repo.Dir)
	for i, p := range prim.Packages {
		byName[p.Name] = i
	}
	// yum-minimal's yumdownloader list for centos 9-stream.
	for _, name := range []string{"basesystem", "filesystem", "setup", "centos-gpg-keys", "centos-stream-release", "centos-stream-repos", UserlandPackage} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	release := prim.Packages[byName["centos-stream-release"]]
	for _, want := range []string{"centos-release", "redhat-release", "system-release", "system-release(releasever)"} {
		if !slices.ContainsFunc(release.Format.Provides, func(e rpmEntry) bool { return e.Name == want }) {
			t.Errorf("centos-stream-release does not provide %s: %v", want, release.Format.Provides)
		}
	}
	for _, r := range centosRequested {
		i, ok := byName[r.name]
		if !ok {
			t.Errorf("no package %s (%s)", r.name, r.from)
			continue
		}
		if !slices.ContainsFunc(prim.Packages[i].Format.Requires, func(e rpmEntry) bool { return e.Name == UserlandPackage }) {
			t.Errorf("%s does not require the userland", r.name)
		}
	}
	query := func(name, format string) string {
		out, err := exec.Command("rpm", "--dbpath", t.TempDir(), "-qp", "--qf", format, repo.RPMs[name]).Output()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v", name, err)
		}
		return string(out)
	}
	if got := query("centos-gpg-keys", "[%{FILENAMES}\n]"); got != CentOSKeyPath+"\n" {
		t.Errorf("centos-gpg-keys ships %q", got)
	}
	if got := query("centos-stream-release", "[%{FILENAMES}\n]"); !strings.Contains(got, "/etc/os-release\n") || !strings.Contains(got, "/etc/redhat-release\n") {
		t.Errorf("centos-stream-release ships %q", got)
	}
	if got := query("setup", "[%{FILENAMES}\n]"); !strings.Contains(got, "/etc/shadow\n") || !strings.Contains(got, "/etc/passwd\n") {
		t.Errorf("setup ships %q", got)
	}
	if got := query("filesystem", "[%{FILENAMES} %{FILELINKTOS}\n]"); !strings.Contains(got, "/lib64 usr/lib64\n") || !strings.Contains(got, "/var/run ../run\n") {
		t.Errorf("filesystem ships %q", got)
	}
	if got := query("centos-stream-repos", "[%{FILENAMES}\n]"); !strings.Contains(got, "/etc/yum.repos.d/centos.repo\n") {
		t.Errorf("centos-stream-repos ships %q", got)
	}
}

func TestFedoraLayout(t *testing.T) {
	requireTools(t)
	key := NewKey(t, "Fedora stand-in")
	u := fakeUserland(t)
	repo, err := FedoraFrom(context.Background(), FedoraSpec{Release: "41", Key: key, Work: t.TempDir()}, u, filepath.Join(t.TempDir(), "fedora"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	prim := readPrimary(t, repo.Dir)
	for i, p := range prim.Packages {
		byName[p.Name] = i
		if !strings.Contains(p.Location.Href, ".fc41.") {
			t.Errorf("%s is %s, not of Fedora 41", p.Name, p.Location.Href)
		}
	}
	// yum-minimal's yumdownloader list for fedora over 29, and the
	// names redhat-common's pkg-map gives Fedora alone.
	for _, name := range []string{"basesystem", "filesystem", "setup", "fedora-gpg-keys", "fedora-release-cloud", "fedora-release-common",
		"fedora-repos", "python3-libselinux", "python3-policycoreutils", "policycoreutils-python-utils", UserlandPackage} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	cloud := prim.Packages[byName["fedora-release-cloud"]]
	for _, want := range []string{"fedora-release", "redhat-release", "system-release", "system-release(releasever)"} {
		if !slices.ContainsFunc(cloud.Format.Provides, func(e rpmEntry) bool { return e.Name == want }) {
			t.Errorf("fedora-release-cloud does not provide %s: %v", want, cloud.Format.Provides)
		}
	}
	query := func(name, format string) string {
		out, err := exec.Command("rpm", "--dbpath", t.TempDir(), "-qp", "--qf", format, repo.RPMs[name]).Output()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v", name, err)
		}
		return string(out)
	}
	if got, want := query("fedora-gpg-keys", "[%{FILENAMES} %{FILELINKTOS}\n]"),
		"/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-41-primary \n/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-41-x86_64 RPM-GPG-KEY-fedora-41-primary\n"; !strings.Contains(got, want) {
		t.Errorf("fedora-gpg-keys ships %q, want %q in it", got, want)
	}
	if got := query("fedora-release-common", "[%{FILENAMES}\n]"); !strings.Contains(got, "/etc/os-release\n") || !strings.Contains(got, "/etc/fedora-release\n") {
		t.Errorf("fedora-release-common ships %q", got)
	}
	if got := query("fedora-repos", "[%{FILENAMES}\n]"); !strings.Contains(got, "/etc/yum.repos.d/fedora.repo\n") {
		t.Errorf("fedora-repos ships %q", got)
	}
}

func TestOpenSUSELayout(t *testing.T) {
	requireTools(t)
	key := NewKey(t, "openSUSE stand-in")
	u := fakeUserland(t)
	repo, err := OpenSUSEFrom(context.Background(), OpenSUSESpec{Key: key, Work: t.TempDir()}, u, filepath.Join(t.TempDir(), "oss"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range readPrimary(t, repo.Dir).Packages {
		names[p.Name] = true
		if !strings.Contains(p.Location.Href, ".lp156.") {
			t.Errorf("%s is %s, not of Leap 15.6", p.Name, p.Location.Href)
		}
	}
	// zypper-minimal's root.d installs these by name.
	for _, name := range []string{"filesystem", "grep", "gzip", "xz", "patterns-openSUSE-base", "python3", "zypper", "sudo",
		"ca-certificates-mozilla", "openSUSE-release", "aaa_base", "kernel-default", UserlandPackage} {
		if !names[name] {
			t.Errorf("no %s", name)
		}
	}
	// zypper --gpg-auto-import-keys imports the key published beside
	// the signed repomd.xml.
	if got, err := os.ReadFile(filepath.Join(repo.Dir, "repodata", "repomd.xml.key")); err != nil || !bytes.Equal(got, key.Public) {
		t.Errorf("repomd.xml.key: %v", err)
	}
}
