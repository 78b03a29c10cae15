package imageboot

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
)

// StartProxy serves the default network's proxy with the policy a build
// has, and points QEMU's guestfwd at it: a server on the host's loopback
// is out of the image's reach unless --allow-net names it. The test
// speaks to the proxy's socket as the relay QEMU starts does.
func TestStartProxy(t *testing.T) {
	var hitsClosed, hitsOpen atomic.Int32
	closed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsClosed.Add(1) }))
	defer closed.Close()
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsOpen.Add(1)
		fmt.Fprint(w, "from the host")
	}))
	defer open.Close()
	allow, err := egress.ParseRules("--allow-net", strings.TrimPrefix(open.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var notices strings.Builder
	o := Options{Network: NetworkProxy, Egress: egress.Policy{AllowNet: allow}, Notices: &notices, SSHPort: 2222}
	dir := t.TempDir()
	proxy, err := StartProxy(&o, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	sock := filepath.Join(dir, "egress.sock")
	self, _ := os.Executable()
	if want := egress.GuestfwdRule(self, sock); o.guestfwd != want {
		t.Errorf("guestfwd %q, want %q", o.guestfwd, want)
	}
	n, err := network(o)
	args := qemu.NetworkArgs(n)
	if err != nil || !strings.Contains(strings.Join(args, " "), "restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:") {
		t.Errorf("network %q, %v", args, err)
	}
	get := func(url string) int {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", url, strings.TrimPrefix(url, "http://"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s through the proxy: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(closed.URL); code != http.StatusForbidden || hitsClosed.Load() != 0 {
		t.Errorf("a loopback server not opened: %d, %d hits; want 403 and none", code, hitsClosed.Load())
	}
	if !strings.Contains(notices.String(), "--allow-net") {
		t.Errorf("the refusal was not reported with the flag that opens it: %q", notices.String())
	}
	if code := get(open.URL); code != http.StatusOK || hitsOpen.Load() != 1 {
		t.Errorf("a loopback server --allow-net opened: %d, %d hits; want 200 and one", code, hitsOpen.Load())
	}
}

// Through libvirt, StartProxy refuses: nothing would lead to it.
func TestStartProxyNotThroughLibvirt(t *testing.T) {
	o := Options{Network: NetworkProxy, Backend: new(libvirt.Conn)}
	if _, err := StartProxy(&o, t.TempDir()); err == nil {
		t.Error("StartProxy through libvirt started a proxy")
	}
}
