//go:build e2e

package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/lockfile"
)

// checkLockFile reads the lock file beside img, a Debian image built
// from the mirror in lists: every installed package is there with the
// file it came from, its archive and the suite whose index listed it;
// and one of them, fetched again from the mirror, is the bytes the lock
// names, and dpkg-deb says it is that package.
func checkLockFile(t *testing.T, img string) *lockfile.Lock {
	t.Helper()
	path := strings.TrimSuffix(img, filepath.Ext(img)) + ".lock"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no lock file beside the image: %v", err)
		return nil
	}
	var l lockfile.Lock
	if err := json.Unmarshal(b, &l); err != nil || l.Format != lockfile.Format {
		t.Errorf("the lock file does not read: %v (format %q)", err, l.Format)
		return nil
	}
	if len(l.Packages) < 100 {
		t.Errorf("the lock file names %d packages; a Debian image has some hundreds", len(l.Packages))
	}
	sum := regexp.MustCompile(`^[0-9a-f]{64}$`)
	archives := map[string]bool{"http://deb.debian.org/debian": true, "http://security.debian.org/debian-security": true}
	var missing []string
	var base *lockfile.Package
	for i, p := range l.Packages {
		if p.URL == "" || !sum.MatchString(p.SHA256) || p.Size <= 0 || !archives[p.Archive] || p.Suite == "" {
			missing = append(missing, p.Name)
		}
		if p.Name == "base-files" {
			base = &l.Packages[i]
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d packages lack their download, archive or suite in the lock file: %s", len(missing), strings.Join(missing, " "))
	}
	if base == nil {
		t.Fatal("base-files is not in the lock file")
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Get(base.URL)
	if err != nil {
		t.Fatalf("fetch %s again: %v", base.URL, err)
	}
	defer resp.Body.Close()
	deb := filepath.Join(t.TempDir(), "base-files.deb")
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch %s again: %s %v", base.URL, resp.Status, err)
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != base.SHA256 || int64(len(data)) != base.Size {
		t.Errorf("%s is %d bytes, SHA-256 %x; the lock file says %d, %s", base.URL, len(data), got, base.Size, base.SHA256)
	}
	os.WriteFile(deb, data, 0o644)
	fields, err := exec.Command("dpkg-deb", "--show", "--showformat=${Package} ${Version} ${Architecture}", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --show: %v", err)
	}
	if want := base.Name + " " + base.Version + " " + base.Arch; string(fields) != want {
		t.Errorf("dpkg-deb says %q, the lock file %q", fields, want)
	}
	// The suites' release files, which a replay serves as they were:
	// signed, with their content.
	suites := map[string]bool{}
	for _, r := range l.Releases {
		sum := sha256.Sum256(r.Content)
		if hex.EncodeToString(sum[:]) != r.SHA256 || !bytes.Contains(r.Content, []byte("-----BEGIN PGP SIGNATURE-----")) {
			t.Errorf("release file %s: its content is not a signed release file of its SHA-256", r.URL)
		}
		suites[strings.TrimSuffix(r.URL[strings.LastIndex(r.URL, "/dists/")+len("/dists/"):], "/InRelease")] = true
	}
	for _, p := range l.Packages {
		if p.Suite != "" && !suites[p.Suite] {
			t.Errorf("%s is from suite %s, whose release file the lock does not carry (it carries %v)", p.Name, p.Suite, suites)
			break
		}
	}
	t.Logf("lock file: %d packages; base-files %s from %s (%s); release files of %v", len(l.Packages), base.Version, base.Archive, base.Suite, slices.Sorted(maps.Keys(suites)))
	return &l
}
