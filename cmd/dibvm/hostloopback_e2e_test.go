//go:build e2e

package main_test

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EDebianFromHostLoopbackMirror builds debian-minimal as DIB's
// documentation has users build through a cache on their own machine:
// DIB_DISTRIBUTION_MIRROR=http://127.0.0.1:PORT/debian, PORT opened with
// --allow-net. The test's reverse proxy on the host's 127.0.0.1 stands
// in for apt-cacher-ng, in front of the real Debian mirror: debootstrap's
// downloads (on the host), the debootstrap element's check of the
// release (curl in the helper) and apt in the chroot all go to it.
func TestE2EDebianFromHostLoopbackMirror(t *testing.T) {
	upstream, _ := url.Parse("http://deb.debian.org/")
	var mu sync.Mutex
	var asked []string
	rp := httputil.NewSingleHostReverseProxy(upstream)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		director(r)
		r.Host = upstream.Host
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	mirror := "http://127.0.0.1:" + port + "/debian"

	sourcesEnv, lists := debianSources(t)
	for i, e := range sourcesEnv {
		sourcesEnv[i] = strings.ReplaceAll(e, "http://deb.debian.org/debian", mirror)
	}
	for name, line := range lists {
		lists[name] = strings.ReplaceAll(line, "http://deb.debian.org/debian", mirror)
	}
	env := append(sourcesEnv, "DIB_DISTRIBUTION_MIRROR="+mirror)
	out := filepath.Join(t.TempDir(), "deb")
	r := dibvm(t, env, 60*time.Minute, "create", "--allow-net", "127.0.0.1:"+port, "-n", "-t", "tar", "-o", out, "debian-minimal")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	files := readTar(t, out+".tar")
	for name, want := range lists {
		if got := files["etc/apt/sources.list.d/"+name+".list"]; got != want {
			t.Errorf("apt sources %s.list: %q, want %q", name, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// debootstrap's InRelease (the element's check, the host's fetch) and
	// -updates', which only apt in the chroot asks for.
	for _, p := range []string{"/debian/dists/stable/InRelease", "/debian/dists/stable-updates/InRelease"} {
		if !slices.Contains(asked, p) {
			t.Errorf("the mirror on the host's loopback was not asked for %s; it was asked for:\n%s", p, strings.Join(asked, "\n"))
		}
	}
	if strings.Contains(r.stderr, "dibvm: egress: refused") {
		t.Errorf("dibvm refused a connection:\n%s", r.stderr)
	}
	t.Logf("debian-minimal from a mirror on the host's loopback built in %s; the mirror answered %d requests", r.took, len(asked))
}
