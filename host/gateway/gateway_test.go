package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/egress"
)

// get sends one plain proxy request for url over c and returns the
// status and the body's first line.
func get(t *testing.T, c net.Conn, url string) (int, string) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	host := strings.SplitN(strings.TrimPrefix(url, "http://"), "/", 2)[0]
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", url, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line, _, _ := strings.Cut(string(b), "\n")
	return resp.StatusCode, line
}

// Listen serves the egress proxy on the socket its guestfwd rule names,
// with the build's policy and debootstrap's service behind
// dibvm.invalid: a loopback server is refused, the service answers.
func TestListen(t *testing.T) {
	var hits atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer local.Close()
	var notices strings.Builder
	p := &Proxy{Notices: &notices}
	dir := t.TempDir()
	sock := filepath.Join(dir, "egress.sock")
	rule, c, err := p.Listen(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	self, _ := os.Executable()
	if want := egress.GuestfwdRule(self, sock); rule != want || p.Addr() != egress.GuestAddr {
		t.Errorf("rule %q at %s, want %q at %s", rule, p.Addr(), want, egress.GuestAddr)
	}
	dial := func() net.Conn {
		conn, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	if code, _ := get(t, dial(), local.URL+"/"); code != http.StatusForbidden || hits.Load() != 0 {
		t.Errorf("a loopback server: %d, %d hits; want 403 and none", code, hits.Load())
	}
	code, line := get(t, dial(), "http://"+api.ServiceHost+api.DebootstrapPath)
	if code != http.StatusNotFound || !strings.Contains(line, "POST "+api.DebootstrapPath+" only") {
		t.Errorf("GET of debootstrap's service: %d %q, want its 404", code, line)
	}
}

// Serve answers the connections of a listener, as the agent forwards
// them through libvirt.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := (&Proxy{}).Serve(t.TempDir(), ln)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, conn, "http://"+ln.Addr().String()+"/"); code != http.StatusForbidden {
		t.Errorf("the proxy's own loopback address: %d, want 403", code)
	}
}

// Of copies the Proxy a machine.Service is, and is the zero Proxy for
// none.
func TestOf(t *testing.T) {
	p := &Proxy{Offline: true}
	q := Of(p)
	q.DownloadCache = "/c"
	if !q.Offline || p.DownloadCache != "" {
		t.Errorf("Of(p) = %+v; p %+v", q, p)
	}
	if z := Of(nil); z.Offline || z.DownloadCache != "" || z.Signed != nil {
		t.Errorf("Of(nil) = %+v", z)
	}
}
