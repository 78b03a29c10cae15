package rpmstandin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// requireTools skips the test where the host lacks rpmbuild and
// createrepo_c, unless it runs in CI, which installs them.
func requireTools(t *testing.T) {
	t.Helper()
	if err := MissingTools(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// smallRepo is a repository of three tiny packages: what a base
// system's filesystem, setup and a tool look like.
func smallRepo(t *testing.T, key *Key) *Repo {
	t.Helper()
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/hello"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/["), []byte("bracket\n"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/su"), []byte("su\n"), 0o755)
	os.Symlink("hello", filepath.Join(tree, "usr/bin/hi"))
	pkgs := []Package{
		{Name: "filesystem", Version: "3.16", Release: "1", Arch: "noarch", Files: []File{
			{Path: "/usr", Mode: fs.ModeDir | 0o755},
			{Path: "/usr/bin", Mode: fs.ModeDir | 0o755},
			{Path: "/bin", Mode: fs.ModeSymlink | 0o777, Target: "usr/bin"},
		}},
		{Name: "setup", Version: "2.13", Release: "1", Arch: "noarch", Files: []File{
			{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nshadow:x:42:\n"), Config: true},
		}},
		{Name: "hello", Version: "1.0", Release: "2", Arch: "x86_64", Tree: tree,
			Attrs:       map[string]Attr{"/usr/bin/su": {Mode: fs.ModeSetuid | 0o755}, "/usr/bin/hello": {Mode: fs.ModeSetgid | 0o755, Group: "shadow"}},
			RequiresPre: []string{"setup"}, Requires: []string{"filesystem"}, Provides: []string{"greeting = 1"},
			Post: "echo 100% done", Posttrans: "echo all in"},
	}
	repo, err := Build(context.Background(), filepath.Join(t.TempDir(), "repo"), t.TempDir(), key, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// checksig runs rpmkeys --checksig on rpm against an rpm database that
// holds only pub.
func checksig(t *testing.T, pub []byte, rpm string) error {
	t.Helper()
	db := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(keyFile, pub, 0o644)
	if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v: %s", err, out)
	}
	out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", rpm).CombinedOutput()
	if err != nil {
		return &checkError{string(out)}
	}
	return nil
}

type checkError struct{ out string }

func (e *checkError) Error() string { return e.out }

func TestBuildSignsEveryPackageAndTheMetadata(t *testing.T) {
	requireTools(t)
	key, other := NewKey(t, "stand-in test"), NewKey(t, "someone else")
	repo := smallRepo(t, key)
	if len(repo.RPMs) != 3 {
		t.Fatalf("rpms: %v", repo.RPMs)
	}
	for name, rpm := range repo.RPMs {
		if err := checksig(t, key.Public, rpm); err != nil {
			t.Errorf("%s: rpmkeys --checksig with the signing key: %v", name, err)
		}
		if err := checksig(t, other.Public, rpm); err == nil {
			t.Errorf("%s: rpmkeys --checksig passes against a key that did not sign it", name)
		}
	}
	pub, _ := os.ReadFile(repo.PublicKey)
	if !bytes.Equal(pub, key.Public) {
		t.Errorf("%s is not the signing key", repo.PublicKey)
	}
	if err := verifyRepomd(repo.Dir, key.Public); err != nil {
		t.Errorf("repomd.xml.asc against the signing key: %v", err)
	}
	if err := verifyRepomd(repo.Dir, other.Public); err == nil {
		t.Error("repomd.xml.asc verifies against a key that did not sign it")
	}

	foreign, err := ForeignSignedCopy(context.Background(), repo, filepath.Join(t.TempDir(), "foreign"), key, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyRepomd(foreign.Dir, key.Public); err != nil {
		t.Errorf("the foreign-signed copy's metadata: %v", err)
	}
	for name, rpm := range foreign.RPMs {
		if err := checksig(t, key.Public, rpm); err == nil {
			t.Errorf("%s of the foreign-signed copy passes against the repository's key", name)
		}
		if err := checksig(t, other.Public, rpm); err != nil {
			t.Errorf("%s of the foreign-signed copy against the other key: %v", name, err)
		}
	}
}

// verifyRepomd checks repodata/repomd.xml.asc in dir against pub.
func verifyRepomd(dir string, pub []byte) error {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		return err
	}
	sig, err := os.Open(filepath.Join(dir, "repodata", "repomd.xml.asc"))
	if err != nil {
		return err
	}
	defer sig.Close()
	_, err = openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(data), sig, nil)
	return err
}

// primary is what this test reads of createrepo_c's primary.xml.
type primary struct {
	Packages []struct {
		Name     string `xml:"name"`
		Arch     string `xml:"arch"`
		Checksum string `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
		Format struct {
			Provides []rpmEntry `xml:"provides>entry"`
			Requires []rpmEntry `xml:"requires>entry"`
			Files    []string   `xml:"file"`
		} `xml:"format"`
	} `xml:"package"`
}

type rpmEntry struct {
	Name string `xml:"name,attr"`
	Pre  string `xml:"pre,attr"`
}

func readPrimary(t *testing.T, dir string) *primary {
	t.Helper()
	var repomd struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &repomd); err != nil {
		t.Fatal(err)
	}
	for _, d := range repomd.Data {
		if d.Type != "primary" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, d.Location.Href))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(d.Location.Href, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatal(err)
			}
		}
		var p primary
		if err := xml.NewDecoder(r).Decode(&p); err != nil {
			t.Fatalf("%s: %v", d.Location.Href, err)
		}
		return &p
	}
	t.Fatal("repomd.xml names no primary metadata")
	return nil
}

func fileSHA256(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestMetadataDescribesThePackages(t *testing.T) {
	requireTools(t)
	key := NewKey(t, "stand-in test")
	repo := smallRepo(t, key)
	p := readPrimary(t, repo.Dir)
	if len(p.Packages) != 3 {
		t.Fatalf("primary.xml has %d packages, want 3", len(p.Packages))
	}
	for _, pkg := range p.Packages {
		if got, want := fileSHA256(t, filepath.Join(repo.Dir, pkg.Location.Href)), pkg.Checksum; got != want {
			t.Errorf("%s: sha256 %s, primary.xml says %s", pkg.Name, got, want)
		}
		if pkg.Name != "hello" {
			continue
		}
		if pkg.Arch != "x86_64" {
			t.Errorf("hello's arch: %s", pkg.Arch)
		}
		if !slices.ContainsFunc(pkg.Format.Provides, func(e rpmEntry) bool { return e.Name == "greeting" }) {
			t.Errorf("hello provides %v, want greeting", pkg.Format.Provides)
		}
		if !slices.ContainsFunc(pkg.Format.Requires, func(e rpmEntry) bool { return e.Name == "setup" && e.Pre == "1" }) {
			t.Errorf("hello requires %v, want setup before it installs", pkg.Format.Requires)
		}
		if !slices.Contains(pkg.Format.Files, "/usr/bin/[") {
			t.Errorf("hello's files in primary.xml: %v", pkg.Format.Files)
		}
	}

	tampered, err := TamperedCopy(repo, filepath.Join(t.TempDir(), "tampered"), "hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range readPrimary(t, tampered.Dir).Packages {
		got := fileSHA256(t, filepath.Join(tampered.Dir, pkg.Location.Href))
		if (got != pkg.Checksum) != (pkg.Name == "hello") {
			t.Errorf("tampered copy: %s's sha256 %s, primary.xml says %s", pkg.Name, got, pkg.Checksum)
		}
	}
	if err := checksig(t, key.Public, tampered.RPMs["hello"]); err == nil {
		t.Error("the tampered rpm passes rpmkeys --checksig")
	}
}

// TestPackageHoldsModesOwnersAndScriptlet reads a built package's
// header back with rpm's query (no database, nothing installed).
func TestPackageHoldsModesOwnersAndScriptlet(t *testing.T) {
	requireTools(t)
	repo := smallRepo(t, NewKey(t, "stand-in test"))
	query := func(name, format string) string {
		out, err := exec.Command("rpm", "--dbpath", t.TempDir(), "-qp", "--qf", format, repo.RPMs[name]).Output()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v: %s", name, err, out)
		}
		return string(out)
	}
	files := query("hello", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]")
	for _, want := range []string{
		"-rwxr-sr-x root:shadow /usr/bin/hello",
		"-rwsr-xr-x root:root /usr/bin/su",
		"-rwxr-xr-x root:root /usr/bin/[",
		"lrwxrwxrwx root:root /usr/bin/hi",
	} {
		if !strings.Contains(files, want+"\n") {
			t.Errorf("hello's files lack %q:\n%s", want, files)
		}
	}
	if strings.Contains(files, " /usr/bin\n") {
		t.Errorf("hello owns /usr/bin, which filesystem has:\n%s", files)
	}
	if got := query("hello", "%{POSTIN}"); got != "echo 100% done" {
		t.Errorf("hello's %%post: %q", got)
	}
	if got := query("hello", "%{POSTTRANS}"); got != "echo all in" {
		t.Errorf("hello's %%posttrans: %q", got)
	}
	if got := query("filesystem", "[%{FILEMODES:perms} %{FILENAMES} %{FILELINKTOS}\n]"); !strings.Contains(got, "lrwxrwxrwx /bin usr/bin\n") {
		t.Errorf("filesystem's files:\n%s", got)
	}
	if got := query("setup", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]"); !strings.Contains(got, "cn /etc/group") {
		t.Errorf("setup's /etc/group is not %%config(noreplace):\n%s", got)
	}
}

func TestBuildRefusesAFileInTwoPackages(t *testing.T) {
	requireTools(t)
	dir := filepath.Join(t.TempDir(), "repo")
	pkgs := []Package{
		{Name: "one", Version: "1", Release: "1", Arch: "noarch", Files: []File{{Path: "/etc/x", Mode: 0o644}}},
		{Name: "two", Version: "1", Release: "1", Arch: "noarch", Files: []File{{Path: "/etc/x", Mode: 0o644}}},
	}
	_, err := Build(context.Background(), dir, t.TempDir(), nil, pkgs)
	if err == nil || !strings.Contains(err.Error(), "/etc/x is in both one and two") {
		t.Fatalf("err = %v, want one naming /etc/x and both packages", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused build left %s behind", dir)
	}
}

func TestFilesNameQuotesWhatSpecsExpand(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/[":         `"/usr/bin/[[]"`,
		"/etc/a b":           `"/etc/a b"`,
		"/usr/share/x*y?{z}": `"/usr/share/x[*]y[?][{]z[}]"`,
	} {
		if got, err := filesName(in); err != nil || got != want {
			t.Errorf("filesName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/etc/100%", `/etc/"q"`, "/etc/a\nb", "relative", "/etc/../x"} {
		if _, err := filesName(bad); err == nil {
			t.Errorf("filesName(%q) is accepted", bad)
		}
	}
}

// TestFailedBuildLeavesNothing: rpmbuild refuses a package whose
// Requires it cannot parse, and the repository's directory goes.
func TestFailedBuildLeavesNothing(t *testing.T) {
	requireTools(t)
	dir := filepath.Join(t.TempDir(), "repo")
	work := t.TempDir()
	pkgs := []Package{{Name: "bad", Version: "1", Release: "1", Arch: "noarch", Requires: []string{">= nothing"}}}
	_, err := Build(context.Background(), dir, work, NewKey(t, "stand-in test"), pkgs)
	if err == nil || !strings.Contains(err.Error(), "rpmbuild bad-1-1.noarch") {
		t.Fatalf("err = %v, want rpmbuild's refusal naming the package", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s", dir)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("a failed build left %d entries in its work directory", len(left))
	}
}

// TestNewKeyLeavesNoAgent: once a test that signed with a key ends, no
// process runs with the key's GnuPG home.
func TestNewKeyLeavesNoAgent(t *testing.T) {
	requireTools(t)
	var home string
	t.Run("sign", func(t *testing.T) {
		k := NewKey(t, "stand-in test")
		home = k.Home
		f := filepath.Join(t.TempDir(), "data")
		os.WriteFile(f, []byte("data"), 0o644)
		if err := k.detachSign(f); err != nil {
			t.Fatal(err)
		}
		if len(processesNaming(t, home)) == 0 {
			t.Fatal("no gpg-agent runs for the key while it is in use: this test sees none")
		}
	})
	if left := processesNaming(t, home); len(left) > 0 {
		t.Errorf("left running with the key's home: %q", left)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("the key's home %s is still there", home)
	}
}

// processesNaming lists the command lines of processes that name s.
func processesNaming(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}
