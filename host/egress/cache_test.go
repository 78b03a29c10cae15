package egress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// What one build kept in the cache reaches another only past the policy
// that build's fetch would meet: a build whose policy refuses the host
// gets the same 403 for a kept file as for one never fetched, so that it
// learns neither the file nor that it was fetched; a service's Fetch is
// refused the same way.
func TestCacheObeysPolicy(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		io.WriteString(w, "a package from the host's loopback")
	}))
	t.Cleanup(srv.Close)
	_, port := splitHostPort(t, srv.URL)
	res := &fakeResolver{addrs: map[string][]string{"mirror.example": {"127.0.0.1"}}}
	dir := filepath.Join(t.TempDir(), "cache")
	kept := "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
	never := "/debian/pool/main/h/hello/hello_2.10-4_amd64.deb"

	// A build that opened the loopback server, by address and by name,
	// fills the cache.
	for _, host := range []string{"127.0.0.1:" + port, "mirror.example:" + port} {
		sock, _ := startProxy(t, Options{
			Cache:  &Cache{Dir: dir},
			Policy: Policy{AllowNet: rules(t, "127.0.0.1:"+port+",mirror.example:"+port)},
		}, res, loopbackDial(t))
		if code, body := ask(t, sock, get(host, kept)); code != http.StatusOK {
			t.Fatalf("GET %s%s with --allow-net: %d %q", host, kept, code, body)
		}
		waitFor(t, func() bool {
			_, err := os.Stat((&Cache{Dir: dir}).file(mustURL(t, "http://"+host+kept)))
			return err == nil
		})
	}
	before := gets.Load()

	for _, c := range []struct {
		name   string
		policy Policy
		host   string
	}{
		{"default policy, address", Policy{}, "127.0.0.1:" + port},
		{"default policy, name", Policy{}, "mirror.example:" + port},
		{"--allow-only deb.debian.org, address", Policy{AllowOnly: rules(t, "deb.debian.org")}, "127.0.0.1:" + port},
		{"--allow-only deb.debian.org, name", Policy{AllowOnly: rules(t, "deb.debian.org")}, "mirror.example:" + port},
		{"--allow-only the name, which is local", Policy{AllowOnly: rules(t, "mirror.example")}, "mirror.example:" + port},
		{"--allow-net another port", Policy{AllowNet: rules(t, "127.0.0.1:1")}, "127.0.0.1:" + port},
	} {
		t.Run(c.name, func(t *testing.T) {
			sock, _ := startProxy(t, Options{Cache: &Cache{Dir: dir}, Policy: c.policy}, res, noDial(t))
			keptCode, keptBody := ask(t, sock, get(c.host, kept))
			neverCode, neverBody := ask(t, sock, get(c.host, never))
			if keptCode != http.StatusForbidden || !strings.Contains(keptBody, "refused a connection") {
				t.Errorf("a kept file: %d %q, want 403 refused", keptCode, keptBody)
			}
			if keptCode != neverCode || keptBody != neverBody {
				t.Errorf("a kept file is answered %d %q\nand one never fetched %d %q: want the same", keptCode, keptBody, neverCode, neverBody)
			}

			p, err := listenProxy(filepath.Join(t.TempDir(), "egress.sock"), Options{Cache: &Cache{Dir: dir}, Policy: c.policy})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			p.own, p.lookup, p.dialContext = fakeOwn, res.lookup, noDial(t)
			r, err := p.Fetch(context.Background(), "http://"+c.host+kept, "")
			var refused *Refused
			if !errors.As(err, &refused) {
				if r != nil {
					r.Close()
				}
				t.Errorf("a service's Fetch of a kept file: %v, want a refusal", err)
			}
		})
	}
	if n := gets.Load(); n != before {
		t.Errorf("the refused requests reached the server %d times", n-before)
	}
}

// A URL with credentials in it is never kept, nor served from what was
// kept for the same URL without them.
func TestCacheableURLs(t *testing.T) {
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", true},
		{"http://deb.debian.org/debian/pool/main/d/debian-installer/di_1_amd64.udeb", true},
		{"http://deb.debian.org/debian/dists/trixie/main/binary-amd64/by-hash/SHA256/0123abcd", true},
		{"http://deb.debian.org/debian/dists/trixie/InRelease", false},
		{"http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc", false},
		{"http://user:secret@repo.example/debian/pool/main/p/private/private_1_amd64.deb", false},
		{"http://user@repo.example/debian/pool/main/p/private/private_1_amd64.deb", false},
		{"http://:secret@repo.example/debian/pool/main/p/private/private_1_amd64.deb", false},
		{"http://user:secret@repo.example/debian/dists/x/main/by-hash/SHA256/0123abcd", false},
		{"http://@repo.example/debian/pool/main/p/private/private_1_amd64.deb", false},
		{"http://repo.example/debian/pool/main/p/private/private_1_amd64.deb?token=secret", false},
		{"https://bucket.example/pool/main/p/p/p_1_amd64.deb?X-Amz-Signature=abc&X-Amz-Credential=def", false},
		{"http://repo.example/debian/dists/x/main/by-hash/SHA256/0123abcd?", false},
		{"http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/Packages/bash-5.1.8-9.el9.x86_64.rpm", true},
		{"http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/repodata/1e5b8d4ffc7c3c4f1b3e7b5fb9cbe7c5e2cc1e4c31b3e2f4a9f0f2b5d1e8c7a6-primary.xml.gz", true},
		{"http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/repodata/repomd.xml", false},
		{"http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/repodata/repomd.xml.asc", false},
		{"http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/repodata/primary.xml.gz", false},
		{"http://repo.example/el9/Packages/private-1-1.x86_64.rpm?token=secret", false},
		{"http://dl.fedoraproject.org/pub/fedora/linux/releases/41/Everything/x86_64/os/Packages/b/bash-5.2.32-1.fc41.x86_64.rpm", true},
		{"http://download.opensuse.org/distribution/leap/15.6/repo/oss/x86_64/bash-4.4-150400.27.3.2.x86_64.rpm", true},
		{"http://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm", false},
		{"http://repos.example/rdo-release.rpm", false},
		{"http://mirror.example/Packages/epel-release-latest-9.noarch.rpm", false},
	} {
		if got := cacheable(mustURL(t, c.url)); got != c.want {
			t.Errorf("cacheable(%s) = %v, want %v", c.url, got, c.want)
		}
	}
}

// The same through the proxy: a package fetched with credentials is
// fetched each time and nothing is kept.
func TestCacheKeepsNothingFetchedWithCredentials(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if u, pw, ok := r.BasicAuth(); !ok || u != "user" || pw != "secret" {
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "a private package")
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	dir := filepath.Join(t.TempDir(), "cache")
	sock, _ := startProxy(t, Options{Cache: &Cache{Dir: dir}, Policy: Policy{AllowNet: rules(t, hostport)}}, nil, loopbackDial(t))
	deb := "/debian/pool/main/p/private/private_1_amd64.deb"
	for i := range 2 {
		if code, body := ask(t, sock, get("user:secret@"+hostport, deb)); code != http.StatusOK || body != "a private package" {
			t.Errorf("GET %d with credentials: %d %q", i+1, code, body)
		}
		time.Sleep(50 * time.Millisecond) // time for an entry to be renamed into place
	}
	if code, _ := ask(t, sock, get(hostport, deb)); code != http.StatusUnauthorized {
		t.Errorf("GET without credentials: %d, want the server's 401", code)
	}
	if n := gets.Load(); n != 3 {
		t.Errorf("the server saw %d requests, want 3 (nothing kept)", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the cache holds %d entries", len(entries))
	}
}

func splitHostPort(t *testing.T, rawURL string) (host, port string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), u.Port()
}

// waitFor waits up to five seconds for cond.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 250 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("gave up waiting")
}

// Served hears of each package sent whole: from the network and from the
// cache, to the guest and to a service, and without a cache; of a
// suite's release file where the cache keeps it; not of a download cut
// short.
func TestServedRecordsPackages(t *testing.T) {
	const body = "a package's bytes"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "short") {
			w.Header().Set("Content-Length", "100")
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	h := sha256.Sum256([]byte(body))
	sum := hex.EncodeToString(h[:])
	type record struct {
		url  string
		size int64
		sum  string
	}
	for _, withCache := range []bool{true, false} {
		var mu sync.Mutex
		var got []record
		o := Options{Policy: Policy{AllowNet: rules(t, hostport)}, Served: func(u string, size int64, sum string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, record{u, size, sum})
		}}
		if withCache {
			o.Cache = &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
		}
		sock, _ := startProxy(t, o, nil, loopbackDial(t))
		deb := "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
		for range 2 { // the second from the cache, when there is one
			if code, b := ask(t, sock, get(hostport, deb)); code != http.StatusOK || b != body {
				t.Fatalf("GET %s: %d %q", deb, code, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		ask(t, sock, get(hostport, "/debian/dists/bookworm/InRelease"))
		ask(t, sock, get(hostport, "/debian/pool/main/s/short/short_1_amd64.deb"))
		p, err := listenProxy(filepath.Join(t.TempDir(), "egress.sock"), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		p.own, p.lookup, p.dialContext = fakeOwn, (&fakeResolver{}).lookup, loopbackDial(t)
		r, err := p.Fetch(context.Background(), srv.URL+"/debian/pool/main/b/base/base_1_all.deb", "")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r)
		r.Close()
		mu.Lock()
		want := []record{{srv.URL + deb, int64(len(body)), sum}, {srv.URL + deb, int64(len(body)), sum}}
		if withCache {
			// A suite's release file is recorded where the cache keeps
			// it, for a replay of the lock.
			want = append(want, record{srv.URL + "/debian/dists/bookworm/InRelease", int64(len(body)), sum})
		}
		want = append(want, record{srv.URL + "/debian/pool/main/b/base/base_1_all.deb", int64(len(body)), sum})
		if !slices.Equal(got, want) {
			t.Errorf("with a cache %v: served %v\nwant %v", withCache, got, want)
		}
		mu.Unlock()
	}
}
