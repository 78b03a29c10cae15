package egress

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
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
	p, err := Listen(sock)
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
	p, err := Listen(sock)
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
