package session

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/lockfile"
)

// A build resumed from checkpoints another build made, with another
// cache, reads the suites of what it downloads itself from the indexes
// that build downloaded: from its own cache where it has them, else from
// where that build got them, by hash and under the egress policy.
func TestRecorderFetchesTheIndexesItsCacheLacks(t *testing.T) {
	index := "Package: hello\nFilename: pool/main/h/hello/hello_1_all.deb\n\n"
	sum := sha256.Sum256([]byte(index))
	hash := hex.EncodeToString(sum[:])
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		if r.URL.Path == "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hash {
			io.WriteString(w, index)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	indexURL := srv.URL + "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hash
	pkgURL := srv.URL + "/debian/pool/main/h/hello/hello_1_all.deb"

	suite := func(policy egress.Policy, cache string) string {
		r := recorder(cache, gateway.Proxy{Policy: policy}, false)
		r.Add(nil)
		r.Served(indexURL, int64(len(index)), hash) // as a checkpoint carried it
		r.Served(pkgURL, 5, "00")
		for _, d := range r.Downloads() {
			if d.URL == pkgURL {
				return d.Suite
			}
		}
		t.Fatal("the package's download is not recorded")
		return ""
	}
	allowed, err := egress.ParseRules("--allow-net", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if got := suite(egress.Policy{AllowNet: allowed}, cache); got != "bookworm" {
		t.Errorf("with the index on its server: suite %q, want bookworm", got)
	}
	if gets != 1 {
		t.Errorf("the index was fetched %d times, want once", gets)
	}
	// Fetched by hash, the index is kept: a later build reads it from its cache.
	if got := suite(egress.Policy{}, cache); got != "bookworm" || gets != 1 {
		t.Errorf("from the cache: suite %q after %d fetches, want bookworm after 1", got, gets)
	}
	// The policy that holds for the guest holds for the host's fetch:
	// loopback is refused by default.
	if got := suite(egress.Policy{}, t.TempDir()); got != "" || gets != 1 {
		t.Errorf("loopback not allowed: suite %q after %d fetches, want none after 1", got, gets)
	}
	// An index whose bytes are not the ones the build recorded names no
	// suite, and is not kept.
	index = "Package: hello\nFilename: pool/main/h/hello/hello_1_all.deb\nX-Changed: yes\n\n" // its hash as it was
	other := t.TempDir()
	if got := suite(egress.Policy{AllowNet: allowed}, other); got != "" {
		t.Errorf("index changed on its server: suite %q, want none", got)
	}
	if kept, _ := os.ReadDir(other); len(kept) != 0 {
		t.Errorf("index changed on its server: the cache keeps %v", kept)
	}
}

// A build held to a lock file resumes from a checkpoint only if every
// package and release file it was made with is the lock's; other
// downloads (a cloud image, an rpm repository's metadata) do not count.
func TestAdmitsChecksThePackagesACheckpointWasMadeWith(t *testing.T) {
	const mirror = "http://deb.debian.org/debian"
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	lock := &lockfile.Lock{Format: lockfile.Format,
		Packages: []lockfile.Package{{Name: "hello", Version: "1", Arch: "all", URL: mirror + "/pool/main/h/hello/hello_1_all.deb", SHA256: a}},
		Releases: []lockfile.Release{{URL: mirror + "/dists/bookworm/InRelease", SHA256: a}}}
	if admits(nil, "") != nil {
		t.Error("a build with no lock checks its checkpoints")
	}
	for _, tc := range []struct {
		downloads []lockfile.Download
		want      string
	}{
		{[]lockfile.Download{{URL: mirror + "/pool/main/h/hello/hello_1_all.deb", SHA256: a}, {URL: mirror + "/dists/bookworm/InRelease", SHA256: a}, {URL: mirror + "/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + b, SHA256: b}}, ""},
		{[]lockfile.Download{{URL: mirror + "/pool/main/h/hello/hello_1_all.deb", SHA256: b}}, "hello_1_all.deb as another file than the lock file's (SHA256 " + b + ", not " + a + ")"},
		{[]lockfile.Download{{URL: mirror + "/pool/main/h/hello/hello_2_all.deb", SHA256: a}}, "hello_2_all.deb, which the lock file does not name"},
		{[]lockfile.Download{{URL: mirror + "/dists/bookworm/InRelease", SHA256: b}}, "InRelease as another file"},
	} {
		err := admits(lock, "img.lock")(tc.downloads)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.downloads, err, tc.want)
		}
	}
}
