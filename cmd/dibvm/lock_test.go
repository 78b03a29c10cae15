package main_test

import (
	"crypto/sha256"
	"encoding/hex"
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
// stand-in rpm repository served at base on the host's loopback (which a
// build reaches through a tunnel the proxy reads as HTTP): every package
// the image's rpm database lists is there with the file it came from,
// from there; and one of them, fetched again, is the bytes the lock
// names, and rpm says it is that package.
func checkRPMLock(t *testing.T, path, base string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no lock file beside the image: %v", err)
		return
	}
	var l lockfile.Lock
	if err := json.Unmarshal(b, &l); err != nil || l.Format != lockfile.Format || len(l.Packages) < 40 {
		t.Errorf("the lock file: %v, format %q, %d packages (want the image's some 50)\n%s", err, l.Format, len(l.Packages), b)
		return
	}
	var missing []string
	var p lockfile.Package
	for _, lp := range l.Packages {
		if !strings.HasPrefix(lp.URL, base+"/") || len(lp.SHA256) != 64 || lp.Size <= 0 || !strings.HasPrefix(lp.Archive, base) {
			missing = append(missing, lp.Name)
		}
		if lp.Name == "openssh-server" {
			p = lp
		}
	}
	if len(missing) > 0 || p.URL == "" {
		t.Fatalf("%d of %d packages lack their download in the lock file: %s", len(missing), len(l.Packages), strings.Join(missing, " "))
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", p.URL, resp.Status, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != p.SHA256 || int64(len(data)) != p.Size {
		t.Errorf("%s is %d bytes, SHA-256 %x; the lock file says %d, %s", p.URL, len(data), sum, p.Size, p.SHA256)
	}
	rpmFile := filepath.Join(t.TempDir(), "p.rpm")
	os.WriteFile(rpmFile, data, 0o644)
	out, err := exec.Command(tool(t, "rpm", "rpm"), "-qp", "--nosignature", "--qf", "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}", rpmFile).Output()
	if err != nil {
		t.Fatalf("rpm -qp: %v", err)
	}
	if want := p.Name + " " + p.Version + " " + p.Arch; string(out) != want {
		t.Errorf("rpm says %q of %s, the lock file %q", out, p.URL, want)
	}
	t.Logf("lock file: %d packages, each with its rpm", len(l.Packages))
}
