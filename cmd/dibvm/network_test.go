package main_test

import (
	"strings"
	"testing"
	"time"
)

const mirrorProbe = "curl -sS -o /dev/null -w '%{http_code}' --max-time 30 http://deb.debian.org/debian/dists/stable/InRelease"

func TestNetworkNATReachesMirror(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", mirrorProbe)
	if r.code != 0 || r.stdout != "200" {
		t.Errorf("mirror not reachable with the default network: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestNetworkNoneCannotReachMirror(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--network", "none", "--", "sh", "-c", mirrorProbe)
	if r.code == 0 {
		t.Errorf("with --network none the guest reached the mirror: stdout %q", r.stdout)
	}
	// The command ran and failed, rather than dibvm failing to boot.
	if !strings.Contains(r.stderr, "curl:") {
		t.Errorf("expected curl's own error, got:\n%s", r.stderr)
	}
}

// The guest reaches the network only through dibvm's proxy, which keeps
// it away from services on the host's loopback and the link-local
// metadata address.
func TestNetworkCannotReachHostLoopback(t *testing.T) {
	needVM(t)
	port, _ := loopbackServer(t)
	script := `
direct=$(curl -s --noproxy '*' --max-time 10 http://10.0.2.2:` + port + `/ || echo refused)
proxied=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:` + port + `/ --noproxy '' || true)
metadata=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://169.254.169.254/ || true)
echo "$direct|$proxied|$metadata"`
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", script)
	if got := strings.TrimSpace(r.stdout); got != "refused|403|403" {
		t.Errorf("got %q, want refused|403|403 (direct, through the proxy, metadata)\n%s", got, r.stderr)
	}
}

// --allow-net opens a service on the host's loopback to the guest, through
// the proxy only: the direct way stays closed, since the netdev is
// restrict=on. Without it the same service is refused, and dibvm says
// once, however often the guest tries, how to open it.
func TestNetworkAllowNetOpensHostLoopback(t *testing.T) {
	needVM(t)
	port, _ := loopbackServer(t)
	// curl uses the proxy the agent sets in http_proxy; --noproxy '' undoes
	// the agent's no_proxy for 127.0.0.1, which would skip the proxy.
	script := `
direct=$(curl -s --noproxy '*' --max-time 10 http://10.0.2.2:` + port + `/ || echo refused)
first=$(curl -s -w '|%{http_code}' --noproxy '' --max-time 10 http://127.0.0.1:` + port + `/ || true)
second=$(curl -s -w '|%{http_code}' --noproxy '' --max-time 10 http://127.0.0.1:` + port + `/ || true)
echo "$direct|$first|$second"`
	refusal := "dibvm: egress: refused a connection from the helper VM to 127.0.0.1:" + port +
		" (loopback address); to allow it, add --allow-net 127.0.0.1\n"

	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", script)
	if want := "refused|" + refusal + "|403|" + refusal + "|403"; strings.TrimSpace(r.stdout) != want {
		t.Errorf("by default: got %q\nwant %q (direct, then twice through the proxy)\n%s", r.stdout, want, r.stderr)
	}
	if n := strings.Count(r.stderr, refusal); n != 1 {
		t.Errorf("by default: the refusal is on stderr %d times, want once:\n%s", n, r.stderr)
	}

	r = dibvm(t, nil, 5*time.Minute, "run", "--allow-net", "127.0.0.1:"+port, "--", "sh", "-c", script)
	if want := "refused|host secret|200|host secret|200"; strings.TrimSpace(r.stdout) != want {
		t.Errorf("with --allow-net 127.0.0.1:%s: got %q, want %q (direct, then twice through the proxy)\n%s", port, r.stdout, want, r.stderr)
	}
	if strings.Contains(r.stderr, "dibvm: egress: refused") {
		t.Errorf("with --allow-net 127.0.0.1:%s, dibvm reports a refusal:\n%s", port, r.stderr)
	}
}
