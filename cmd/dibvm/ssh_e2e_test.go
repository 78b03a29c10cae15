//go:build e2e

package main_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshKey is a key pair made with OpenSSH's ssh-keygen for one test.
type sshKey struct {
	priv, pub string // files; pub is readable by the build's user
	// debianUpgrades has checkSSH check, against Debian's archives, that
	// the image left the build with every update, if the archives are
	// still as they were when the build began (archiveState).
	debianUpgrades bool
	archiveState   string
}

func newSSHKey(t *testing.T) *sshKey {
	t.Helper()
	priv, pub := loginKey(t)
	return &sshKey{priv: priv, pub: pub, debianUpgrades: true, archiveState: debianArchiveState(t)}
}

// freePort is a TCP port free on the host's loopback just now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// debianProxy starts, on the host's loopback, an HTTP proxy that passes
// plain GETs to Debian's archive and security archive and refuses every
// other destination, and returns its address: the booted image reaches
// the mirror through it, and nothing else.
func debianProxy(t *testing.T) string {
	t.Helper()
	allowed := map[string]bool{"deb.debian.org": true, "security.debian.org": true}
	transport := &http.Transport{Proxy: nil}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead || r.URL.Scheme != "http" || !allowed[r.URL.Hostname()] || r.URL.Port() != "" {
			http.Error(w, "this test proxy passes only GETs to Debian's archives", http.StatusForbidden)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, h := range []string{"If-Modified-Since", "Range", "If-Range", "Cache-Control"} {
			if v := r.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
		resp, err := transport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// checkSSH logs in to the booted image with the real OpenSSH client on
// the forwarded loopback port, as the dev user with key, and checks: the
// network interface, whatever its name, got its address by DHCP; sshd's
// host key is the one the guest made at first boot; and, for a Debian
// image, with fresh package lists from Debian's archives, nothing is left
// to upgrade.
func checkSSH(t *testing.T, key *sshKey, port int) {
	t.Helper()
	ssh := tool(t, "ssh", "openssh-client")
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	args := []string{"-i", key.priv, "-p", strconv.Itoa(port), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "ConnectTimeout=20", "devuser@127.0.0.1"}
	// sshd may still be starting; cloud-init may still be looking for a
	// datasource.
	deadline := time.Now().Add(5 * time.Minute)
	var out []byte
	var err error
	for {
		out, err = exec.Command(ssh, append(args, "true")...).CombinedOutput()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("ssh devuser@127.0.0.1 -p %d with the key from DIB_DEV_USER_AUTHORIZED_KEYS: %v\n%s", port, err, out)
	}
	// debian-minimal has no iproute2: the names from sysfs, the addresses
	// from hostname, and networkd's DHCP leases from its state directory.
	script := "echo \"net=$(ls /sys/class/net | grep -vx lo | tr '\\n' ' ')\"; echo \"addr=$(hostname -I)\"; " +
		"echo \"leases=$(ls /run/systemd/netif/leases | wc -l)\"; " +
		"echo \"services=$(systemctl is-active ssh-keygen ssh | tr '\\n' ' ')\"; " +
		"echo \"hostkey=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2)\"; "
	if key.debianUpgrades {
		script += "sudo -n apt-get -q -o Acquire::http::Proxy=http://10.0.2.100:3128 update 2>&1 | grep -c security.debian.org | sed 's/^/security-lines=/'; " +
			"apt-get -s upgrade | grep ' upgraded, ' | sed 's/^/upgrade=/'"
	}
	out, err = exec.Command(ssh, append(args, script)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh checks: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("over ssh:\n%s", got)
	if !regexp.MustCompile(`(?m)^addr=(.* )?10\.0\.2\.15( |$)`).MatchString(got) || !regexp.MustCompile(`(?m)^leases=[1-9]`).MatchString(got) {
		t.Errorf("the guest has no DHCP address from QEMU's network:\n%s", got)
	}
	if m := regexp.MustCompile(`(?m)^net=(\S+) $`).FindStringSubmatch(got); m == nil || m[1] == "eth0" {
		t.Errorf("want one interface with a predictable name such as ens3:\n%s", got)
	}
	if !strings.Contains(got, "services=active active ") {
		t.Errorf("ssh-keygen and ssh are not both active:\n%s", got)
	}
	seen, err := exec.Command(tool(t, "ssh-keygen", "openssh-client"), "-lf", knownHosts).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -lf known_hosts: %v", err)
	}
	if m := regexp.MustCompile(`hostkey=(SHA256:\S+)`).FindStringSubmatch(got); m == nil || !strings.Contains(string(seen), m[1]) {
		t.Errorf("the host key ssh saw (%s) is not the guest's ssh_host_ed25519_key:\n%s", seen, got)
	}
	if !key.debianUpgrades {
		return
	}
	if !regexp.MustCompile(`security-lines=[1-9]`).MatchString(got) {
		t.Errorf("apt-get update did not read the security archive:\n%s", got)
	}
	if now := debianArchiveState(t); now != key.archiveState {
		t.Logf("Debian's archives changed since the build began (%s, now %s): not checking that nothing is left to upgrade", key.archiveState, now)
	} else if !strings.Contains(got, "upgrade=0 upgraded, ") {
		t.Errorf("the image is not up to date with its sources:\n%s", got)
	}
}
