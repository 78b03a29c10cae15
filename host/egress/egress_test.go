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

func TestAllowed(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": false, "127.1.2.3": false, "::1": false, "169.254.169.254": false,
		"fe80::1": false, "0.0.0.0": false, "::": false, "224.0.0.1": false,
		"151.101.2.132": true, "10.1.2.3": true, "192.168.1.10": true, "2a04:4e42::644": true,
	} {
		if got := allowed(net.ParseIP(ip)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", ip, got, want)
		}
	}
}

// The proxy refuses the host's loopback however it is named, in plain
// requests and in CONNECT, while a server there is up and would answer.
func TestProxyRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secret")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	sock := filepath.Join(t.TempDir(), "egress.sock")
	p, err := Listen(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, req := range []string{
		"GET http://127.0.0.1:" + port + "/ HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n\r\n",
		"GET http://localhost:" + port + "/ HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n",
		"CONNECT 127.0.0.1:" + port + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n\r\n",
		"CONNECT [::1]:" + port + " HTTP/1.1\r\nHost: [::1]:" + port + "\r\n\r\n",
		"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%q: status %d, want 403", strings.SplitN(req, "\r\n", 2)[0], resp.StatusCode)
		}
		c.Close()
	}
}

func TestProxyRejectsNonProxyRequests(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "egress.sock")
	p, err := Listen(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, _ := net.Dial("unix", sock)
	defer c.Close()
	fmt.Fprint(c, "GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: %v %v", resp, err)
	}
}

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
		case "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb":
			fmt.Fprint(w, "a package")
		case "/debian/dists/trixie/InRelease":
			fmt.Fprintf(w, "index %d", hits[r.URL.Path])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	sock := filepath.Join(dir, "egress.sock")
	p, err := Listen(sock, &Cache{Dir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.allow = func(net.IP) bool { return true } // the test server is on loopback
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
}
