package egress

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestLoopbackURLs(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"http://127.0.0.1:3142/deb.debian.org/debian", []string{"127.0.0.1:3142"}},
		{"http://localhost:3142/debian", []string{"127.0.0.1:3142"}},
		{"http://LocalHost./debian", []string{"127.0.0.1:80"}},
		{"https://[::1]:8443/simple", []string{"[::1]:8443"}},
		{"http://[::ffff:127.0.0.1]:81/", []string{"127.0.0.1:81"}},
		{"git://127.0.0.2/repo.git", []string{"127.0.0.2:9418"}},
		{"deb [trusted=yes] http://127.0.0.1:3142/debian bookworm main\ndeb http://localhost:8080/x y z",
			[]string{"127.0.0.1:3142", "127.0.0.1:8080"}},
		{"http://u:p@127.0.0.1:3142/x", []string{"127.0.0.1:3142"}},
		{"--index-url=http://127.0.0.1:3141/root/pypi,http://deb.debian.org/", []string{"127.0.0.1:3141"}},
		{"http://deb.debian.org/debian", nil},
		{"http://10.0.2.2:3142/debian", nil},
		{"http://localhost.example:3142/", nil},
		{"http://[fe80::1%25lo]:80/", nil},
		{"svn://127.0.0.1/repo", nil}, // no port known for the scheme
		{"http://127.0.0.1:0/", nil},
		{"http://127.0.0.1:99999/", nil},
		{"/usr/share/keyrings/x.gpg", nil},
		{"127.0.0.1:3142", nil}, // not a URL
	} {
		var got []string
		for _, a := range LoopbackURLs(tc.value) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("LoopbackURLs(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestHostLoopback(t *testing.T) {
	rules, err := ParseRules("--allow-net", "127.0.0.1:3142,localhost:8080,[::1]:9000,127.0.0.1,localhost,10.0.0.0/8,deb.debian.org:80,192.168.1.1:80")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{AllowNet: rules}
	urls := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3142"), netip.MustParseAddrPort("127.0.0.1:5000")}
	got := fmt.Sprint(p.HostLoopback(urls))
	want := "[127.0.0.1:3142 127.0.0.1:5000 127.0.0.1:8080 [::1]:9000]"
	if got != want {
		t.Errorf("HostLoopback = %s, want %s", got, want)
	}
	if got := (Policy{}).HostLoopback(nil); len(got) != 0 {
		t.Errorf("no rules, no URLs: %v", got)
	}
}

func TestOpensLoopback(t *testing.T) {
	for _, tc := range []struct {
		allow, addr string
		want        bool
	}{
		{"127.0.0.1:3142", "127.0.0.1:3142", true},
		{"127.0.0.1", "127.0.0.1:3142", true},
		{"127.0.0.0/8", "127.0.0.5:3142", true},
		{"localhost:3142", "127.0.0.1:3142", true},
		{"localhost", "[::1]:3142", true},
		{"127.0.0.1:3142", "127.0.0.1:3143", false},
		{"127.0.0.1:3142", "[::1]:3142", false},
		{"deb.debian.org", "127.0.0.1:80", false},
		{"", "127.0.0.1:3142", false},
	} {
		rules, err := ParseRules("--allow-net", tc.allow)
		if err != nil {
			t.Fatal(err)
		}
		if got := (Policy{AllowNet: rules}).OpensLoopback(netip.MustParseAddrPort(tc.addr)); got != tc.want {
			t.Errorf("--allow-net %q opens %s: %v, want %v", tc.allow, tc.addr, got, tc.want)
		}
	}
}

// The proxy resolves localhost itself, to the loopback addresses the
// policy opens: with only 127.0.0.1 opened, the ::1 a resolver would
// also give does not refuse the whole name.
func TestProxyLocalhost(t *testing.T) {
	own := []netip.Prefix{}
	for _, tc := range []struct {
		allow string
		want  string
	}{
		{"127.0.0.1:3142", "[127.0.0.1]"},
		{"[::1]:3142", "[::1]"},
		{"localhost:3142", "[127.0.0.1 ::1]"},
		{"", "[127.0.0.1]"},
	} {
		rules, _ := ParseRules("--allow-net", tc.allow)
		got := fmt.Sprint(Policy{AllowNet: rules}.localhost(3142, own))
		if got != tc.want {
			t.Errorf("--allow-net %q: localhost is %s, want %s", tc.allow, got, tc.want)
		}
	}
}

// localhost through the proxy is the host's loopback, without a
// resolver (the fake one knows no name): with --allow-net 127.0.0.1:PORT
// it reaches the server there, as a tool that ignores no_proxy in the
// guest asks for it; with --allow-net localhost:PORT the address does
// too; another port stays refused.
func TestProxyLocalhostReachesLoopbackServer(t *testing.T) {
	hostport, port := loopbackServer(t)
	for _, allow := range []string{hostport, "localhost:" + port} {
		sock, notices := startProxy(t, Options{Policy: Policy{AllowNet: rules(t, allow)}}, &fakeResolver{}, loopbackDial(t))
		for _, dest := range []string{"localhost:" + port, "LocalHost.:" + port, hostport} {
			if code, body := ask(t, sock, get(dest, "/")); code != http.StatusOK || body != "host secret" {
				t.Errorf("--allow-net %s: GET %s: %d %q", allow, dest, code, body)
			}
			if code, body := tunnel(t, sock, dest, "/"); code != http.StatusOK || body != "host secret" {
				t.Errorf("--allow-net %s: CONNECT %s: %d %q", allow, dest, code, body)
			}
		}
		if code, _ := ask(t, sock, get("localhost:1", "/")); code != http.StatusForbidden {
			t.Errorf("--allow-net %s: GET localhost:1: %d, want 403", allow, code)
		}
		if !strings.Contains(notices.String(), "127.0.0.1:1 (localhost, loopback address)") {
			t.Errorf("--allow-net %s: the refusal of localhost:1 is not reported:\n%s", allow, notices)
		}
	}
}
