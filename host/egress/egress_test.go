package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGuestfwdRuleQuotes(t *testing.T) {
	got := GuestfwdRule("/opt/my tools,v2/dibvm", "/tmp/dibvm-run-1/egress.sock")
	want := "tcp:10.0.2.100:3128-cmd:'/opt/my tools,,v2/dibvm' __dibvm-egress-relay '/tmp/dibvm-run-1/egress.sock'"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Pool files are served from the cache the second time, byte for byte;
// index files that change are never cached, nor are errors.
func TestCacheKeepsPoolFiles(t *testing.T) {
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[r.URL.Path]++
		switch r.URL.Path {
		case "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "/debian/pool/main/h/hello/hello_2.10-4_amd64.deb":
			fmt.Fprint(w, "a package")
		case "/debian/dists/trixie/InRelease":
			fmt.Fprintf(w, "index %d", hits[r.URL.Path])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	// The test server is on loopback, which the user opens here.
	cache := &Cache{Dir: filepath.Join(dir, "cache")}
	sock, _ := startProxy(t, Options{
		Cache:  cache,
		Policy: Policy{AllowNet: rules(t, strings.TrimPrefix(srv.URL, "http://"))},
	}, nil, loopbackDial(t))
	get := func(path string) (int, string, string) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: x\r\n\r\n", srv.URL, path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("X-Dibvm-Cache")
	}
	deb := "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
	for i, wantCache := range []string{"", "hit"} {
		code, body, cache := get(deb)
		if code != 200 || body != "a package" || cache != wantCache {
			t.Errorf("fetch %d of the .deb: %d %q cache=%q", i+1, code, body, cache)
		}
		// The entry is renamed into place just after the last byte went
		// to the client, which may already be asking again.
		for wait := 0; i == 0 && wait < 100; wait++ {
			if m, _ := filepath.Glob(filepath.Join(dir, "cache", "*_hello_2.10-3_amd64.deb")); len(m) == 1 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if hits[deb] != 1 {
		t.Errorf("the server saw %d requests for the .deb, want 1", hits[deb])
	}
	for i := 1; i <= 2; i++ {
		if _, body, _ := get("/debian/dists/trixie/InRelease"); body != fmt.Sprintf("index %d", i) {
			t.Errorf("InRelease fetch %d: %q (index files must not be cached)", i, body)
		}
	}
	missing := "/debian/pool/main/n/nothere/nothere_1_amd64.deb"
	for i := 0; i < 2; i++ {
		if code, _, _ := get(missing); code != 404 {
			t.Errorf("missing .deb: status %d", code)
		}
	}
	if hits[missing] != 2 {
		t.Errorf("a 404 was cached")
	}
	// Once the run has added its budget to the cache, downloads pass
	// through whole but are not kept: the guest chooses the URLs.
	cache.added.Store(maxCacheAdd)
	other := "/debian/pool/main/h/hello/hello_2.10-4_amd64.deb"
	for i := 0; i < 2; i++ {
		if code, body, c := get(other); code != 200 || body != "a package" || c != "" {
			t.Errorf("past the budget, fetch %d: %d %q cache=%q", i+1, code, body, c)
		}
	}
	if hits[other] != 2 {
		t.Errorf("past the budget, the server saw %d requests, want 2 (nothing kept)", hits[other])
	}
}
