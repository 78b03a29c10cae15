package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/lockfile"
)

// checkRPMLock reads the lock file at path, of an image built from the
// stand-in rpm repository served at base on the host's loopback: every
// package the image's rpm database lists is there, by name, version and
// architecture; and the stand-in's file of that name for one of them is,
// as rpm reads it, that package. (A build reaches a server on the host's
// loopback through a tunnel the egress proxy does not read, so the lock
// names no downloads here: see README, Lock files. The e2e Debian build
// checks those.)
func checkRPMLock(t *testing.T, path, base string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no lock file beside the image: %v", err)
		return
	}
	var l lockfile.Lock
	if err := json.Unmarshal(b, &l); err != nil || l.Format != lockfile.Format {
		t.Errorf("the lock file: %v, format %q\n%s", err, l.Format, b)
		return
	}
	names := map[string]lockfile.Package{}
	for _, p := range l.Packages {
		names[p.Name] = p
	}
	p, ok := names["openssh-server"]
	if len(l.Packages) < 40 || !ok || names["kernel"].Name == "" {
		t.Fatalf("the lock file names %d packages, kernel %v and openssh-server %v: want the image's some 50", len(l.Packages), names["kernel"].Name != "", ok)
	}
	_, version, _ := strings.Cut(p.Version, ":")
	if version == "" {
		version = p.Version
	}
	u := base + "/Packages/" + p.Name + "-" + version + "." + p.Arch + ".rpm"
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	rpmFile := filepath.Join(t.TempDir(), "p.rpm")
	os.WriteFile(rpmFile, data, 0o644)
	out, err := exec.Command(tool(t, "rpm", "rpm"), "-qp", "--nosignature", "--qf", "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}", rpmFile).Output()
	if err != nil {
		t.Fatalf("rpm -qp: %v", err)
	}
	if want := p.Name + " " + p.Version + " " + p.Arch; string(out) != want {
		t.Errorf("rpm says %q of %s, the lock file %q", out, u, want)
	}
	t.Logf("lock file: %d packages", len(l.Packages))
}
