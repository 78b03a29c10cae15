package main_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// mirrorOnLoopback serves a directory with debian/probe in it on the
// host's loopback at network and address ("tcp4", "127.0.0.1:0"): a
// stand-in for apt-cacher-ng or a mirror of the user's own, which DIB's
// documentation has users run on their machine. It returns the port and
// the number of requests it served.
func mirrorOnLoopback(t *testing.T, network, address string) (string, *atomic.Int32) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "debian"), 0o755)
	os.WriteFile(filepath.Join(dir, "debian", "probe"), []byte("the host's mirror on "+address+"\n"), 0o644)
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	hits := &atomic.Int32{}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), hits
}

// probeHook fetches each URL of the settings with the helper's tools and
// keeps what it got (or how it failed) in /probe of the tree; curl goes
// into the tree too, for the chroot's turn. None of them is told of a
// proxy beyond the http_proxy and no_proxy every hook has.
const probeHook = `#!/bin/bash
set -u
where=${PROBE_WHERE:-}
T=$TARGET_ROOT
[ -n "$where" ] && T=
mkdir -p "$T/probe"
get() {
    local name=$1; shift
    if out=$("$@" 2>&1); then echo "$out" > "$T/probe/$name"; else echo "failed: $out" > "$T/probe/$name"; fi
}
py='import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())'
get ${where}curl-ip curl -fsS --max-time 30 "$DIB_DISTRIBUTION_MIRROR/probe"
get ${where}curl-localhost curl -fsS --max-time 30 "$DIB_PROBE_LOCALHOST/probe"
get ${where}closed curl -fsS --max-time 30 "$PROBE_CLOSED/probe"
[ -n "$where" ] && exit 0
get wget-ip wget -q -O - -T 30 -t 1 "$DIB_DISTRIBUTION_MIRROR/probe"
get wget-localhost wget -q -O - -T 30 -t 1 "$DIB_PROBE_LOCALHOST/probe"
get python-ip python3 -c "$py" "$DIB_DISTRIBUTION_MIRROR/probe"
get python-localhost python3 -c "$py" "$DIB_PROBE_LOCALHOST/probe"
# As a tool that ignores no_proxy would: through the proxy, by name.
get proxied-localhost curl -fsS --max-time 30 --noproxy '' "$DIB_PROBE_LOCALHOST/probe"
# As a tool that sees no proxy at all would (under sudo's env_reset).
noproxy="env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u no_proxy -u NO_PROXY"
get bare-ip $noproxy curl -fsS --max-time 30 "$DIB_DISTRIBUTION_MIRROR/probe"
if [ -n "${DIB_PROBE_V6:-}" ]; then
    get curl-v6 curl -fsS --max-time 30 "$DIB_PROBE_V6/probe"
    get wget-v6 wget -q -O - -T 30 -t 1 "$DIB_PROBE_V6/probe"
    get bare-v6 $noproxy curl -fsS --max-time 30 "$DIB_PROBE_V6/probe"
fi
curl=$(command -v curl)
for lib in $(ldd "$curl" | grep -o '/[^ ]*'); do
    mkdir -p "$T$(dirname "$lib")"
    [ -e "$T$lib" ] || cp "$lib" "$T$lib"
done
cp "$curl" "$T/usr/bin/"
`

// Settings that name the host's loopback, as DIB's documentation
// suggests (DIB_DISTRIBUTION_MIRROR=http://127.0.0.1:3142/…), mean the
// host's service inside the helper VM too, once --allow-net opens it:
// plain URLs, fetched by curl, wget and Python's urllib (pip's way with
// proxies) outside the chroot and by curl in it, by address and as
// localhost, with the no_proxy every hook has, and by curl without any
// proxy variable, as under the image's own sudo. A loopback port the
// settings name and --allow-net does not open is refused by the host,
// which says how to open it.
func TestCreateReachesHostLoopback(t *testing.T) {
	needVM(t)
	port, hits := mirrorOnLoopback(t, "tcp4", "127.0.0.1:0")
	closed, closedHits := mirrorOnLoopback(t, "tcp4", "127.0.0.1:0")
	mine := elementtest.WriteTree(t, map[string]string{
		"loopback-probe/root.d/20-loopback-probe*":    probeHook,
		"loopback-probe/install.d/20-loopback-probe*": strings.Replace(probeHook, "\n", "\nPROBE_WHERE=chroot-\n", 1),
	})
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + mine,
		"DIB_DISTRIBUTION_MIRROR=http://127.0.0.1:" + port + "/debian",
		"DIB_PROBE_LOCALHOST=http://localhost:" + port + "/debian"}
	args := []string{"create", "-n", "-t", "tar", "--allow-net", "127.0.0.1:" + port,
		"--env", "PROBE_CLOSED=http://127.0.0.1:" + closed + "/debian"}
	want := map[string]string{}
	for _, name := range []string{"curl-ip", "curl-localhost", "wget-ip", "wget-localhost", "python-ip",
		"python-localhost", "proxied-localhost", "bare-ip", "chroot-curl-ip", "chroot-curl-localhost"} {
		want[name] = "the host's mirror on 127.0.0.1:0\n"
	}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		v6, _ := mirrorOnLoopback(t, "tcp6", "[::1]:0")
		env = append(env, "DIB_PROBE_V6=http://[::1]:"+v6+"/debian")
		args = append(args, "--allow-net", "[::1]:"+v6)
		want["curl-v6"] = "the host's mirror on [::1]:0\n"
		want["wget-v6"] = want["curl-v6"]
		want["bare-v6"] = want["curl-v6"]
	} else {
		t.Logf("no IPv6 loopback on this host (%v): [::1] is not tried", err)
	}
	out := filepath.Join(t.TempDir(), "tree")
	r := dibvm(t, env, 10*time.Minute, append(args, "-o", out, "tiny-os", "loopback-probe")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	tree := readTar(t, out+".tar")
	for name, body := range want {
		if got := tree["probe/"+name]; got != body {
			t.Errorf("%s: got %q, want %q", name, got, body)
		}
	}
	if n := int(hits.Load()); n < 10 {
		t.Errorf("the host's mirror on 127.0.0.1 served %d requests, want 10", n)
	}
	for _, name := range []string{"closed", "chroot-closed"} {
		if got := tree["probe/"+name]; !strings.HasPrefix(got, "failed: ") {
			t.Errorf("%s: a port --allow-net does not open gave %q", name, got)
		}
	}
	if closedHits.Load() != 0 {
		t.Errorf("the port --allow-net does not open served %d requests", closedHits.Load())
	}
	refusal := fmt.Sprintf("dibvm: egress: refused a connection from the helper VM to 127.0.0.1:%s (loopback address); to allow it, add --allow-net 127.0.0.1\n", closed)
	if n := strings.Count(r.stderr, refusal); n != 1 {
		t.Errorf("the refusal of 127.0.0.1:%s is on stderr %d times, want once:\n%s", closed, n, r.stderr)
	}
}
