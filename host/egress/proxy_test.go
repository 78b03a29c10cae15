package egress

// These tests send nothing to any address but the loopback servers they
// start: names resolve through a fake resolver, and the dialer of every
// test that expects a refusal fails the test if the proxy ever calls it.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// fakeResolver maps names to addresses, and remembers what it was asked.
type fakeResolver struct {
	addrs map[string][]string

	mu    sync.Mutex
	asked []string
}

func (r *fakeResolver) lookup(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.asked = append(r.asked, host)
	r.mu.Unlock()
	var out []netip.Addr
	for _, a := range r.addrs[strings.ToLower(host)] {
		out = append(out, netip.MustParseAddr(a))
	}
	if out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (r *fakeResolver) wasAsked(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.asked, name)
}

// noDial is the dialer of a proxy that must refuse before it dials. It
// reports with Errorf, not Fatal, which may only be called from the
// test's own goroutine; either way the test fails and nothing is dialed.
func noDial(t *testing.T) dialFunc {
	return func(_ context.Context, _, addr string) (net.Conn, error) {
		t.Errorf("the proxy dialed %s, which it should have refused", addr)
		return nil, errors.New("test: dialing is not allowed")
	}
}

// loopbackDial dials the test's own servers on loopback, and nothing else.
func loopbackDial(t *testing.T) dialFunc {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("the proxy dialed %s, not a test server on loopback", addr)
			return nil, errors.New("test: dialing is not allowed")
		}
		return d.DialContext(ctx, network, addr)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProxy serves a proxy as o says, with the fake host addresses, the
// resolver (nil: none may be needed) and the dialer, and returns its
// socket and what it reports.
func startProxy(t *testing.T, o Options, res *fakeResolver, dial dialFunc) (string, *syncBuffer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "egress.sock")
	notices := &syncBuffer{}
	o.Notices = notices
	p, err := listenProxy(sock, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if res == nil {
		res = &fakeResolver{}
	}
	p.own, p.lookup, p.dialContext = fakeOwn, res.lookup, dial
	go p.serve()
	return sock, notices
}

// ask sends a raw request on the proxy's socket, as the guest's relay
// does, and returns the response's status and body.
func ask(t *testing.T, sock, raw string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", firstLine(raw), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func get(hostport, path string) string {
	return "GET http://" + hostport + path + " HTTP/1.1\r\nHost: " + hostport + "\r\n\r\n"
}

func connect(hostport string) string {
	return "CONNECT " + hostport + " HTTP/1.1\r\nHost: " + hostport + "\r\n\r\n"
}

func firstLine(raw string) string { return strings.SplitN(raw, "\r\n", 2)[0] }

// tunnel asks for CONNECT hostport and then GET path through the tunnel.
func tunnel(t *testing.T, sock, hostport, path string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, connect(hostport))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Names and literals that lead to an address local to the host are
// refused, in plain requests and CONNECT, without a connection: a name
// with one public and one private address as a whole.
func TestProxyRefusesLocalDestinations(t *testing.T) {
	res := &fakeResolver{addrs: map[string][]string{
		"internal.example": {"10.1.2.3"},
		"metadata.example": {"169.254.169.254"},
		"cgnat.example":    {"100.64.1.2"},
		"self.example":     {"203.0.113.9"},
		"mixed.example":    {"151.101.2.132", "192.168.1.10"},
		"mapped.example":   {"::ffff:127.0.0.1"},
		"localhost":        {"127.0.0.1", "::1"},
		"v6.example":       {"2a04:4e42::644", "fd12::1"},
		"nat64.example":    {"64:ff9b::a9fe:a9fe"},
	}}
	sock, notices := startProxy(t, Options{}, res, noDial(t))
	for _, tc := range []struct {
		host, addr, detail string
	}{
		{"internal.example", "10.1.2.3", "internal.example, private address"},
		{"metadata.example", "169.254.169.254", "metadata.example, link-local address"},
		{"cgnat.example", "100.64.1.2", "cgnat.example, CGNAT address"},
		{"self.example", "203.0.113.9", "self.example, host's own address"},
		{"mixed.example", "192.168.1.10", "mixed.example, private address"},
		{"mapped.example", "127.0.0.1", "mapped.example, loopback address"},
		{"LocalHost", "127.0.0.1", "localhost, loopback address"},
		{"v6.example", "fd12::1", "v6.example, private address"},
		{"nat64.example", "64:ff9b::a9fe:a9fe", "nat64.example, NAT64-mapped link-local address"},
		{"169.254.169.254", "169.254.169.254", "link-local address"},
		{"[::ffff:169.254.169.254]", "169.254.169.254", "link-local address"},
		{"[::ffff:10.0.0.1]", "10.0.0.1", "private address"},
		{"[fe80::1]", "fe80::1", "link-local address"},
		{"[::1]", "::1", "loopback address"},
		{"0.0.0.0", "0.0.0.0", "unspecified address"},
		{"[::]", "::", "unspecified address"},
	} {
		for _, port := range []uint16{80, 443} {
			hostport := fmt.Sprintf("%s:%d", tc.host, port)
			want := fmt.Sprintf("dibvm: egress: refused a connection from the helper VM to %s (%s); to allow it, add --allow-net ",
				netip.AddrPortFrom(netip.MustParseAddr(tc.addr), port), tc.detail)
			for _, raw := range []string{get(hostport, "/latest/meta-data/"), connect(hostport)} {
				code, body := ask(t, sock, raw)
				if code != http.StatusForbidden || !strings.HasPrefix(body, want) {
					t.Errorf("%s: %d %q\nwant 403 %q…", firstLine(raw), code, body, want)
				}
			}
		}
	}
	// Both ports and methods of one name and address make one line; the
	// two spellings of 169.254.169.254 are one address.
	if n := strings.Count(notices.String(), "\n"); n != 15 {
		t.Errorf("%d lines reported, want 15:\n%s", n, notices)
	}
}

// The cache's downloads go through the same check.
func TestProxyRefusesCachedDownloads(t *testing.T) {
	res := &fakeResolver{addrs: map[string][]string{"internal.example": {"10.1.2.3"}}}
	dir := filepath.Join(t.TempDir(), "cache")
	sock, _ := startProxy(t, Options{Cache: &Cache{Dir: dir}}, res, noDial(t))
	code, body := ask(t, sock, get("internal.example", "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"))
	want := "dibvm: egress: refused a connection from the helper VM to 10.1.2.3:80 (internal.example, private address); to allow it, add --allow-net internal.example or --allow-net 10.1.2.3\n"
	if code != http.StatusForbidden || body != want {
		t.Errorf("got %d %q\nwant 403 %q", code, body, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the cache holds %d entries after a refusal", len(entries))
	}
}

// A server the user opened cannot redirect a cached download to an
// address that is not: the cache's client dials each hop through the
// check.
func TestProxyChecksCacheRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://internal.example"+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	res := &fakeResolver{addrs: map[string][]string{"internal.example": {"10.1.2.3"}}}
	sock, _ := startProxy(t, Options{
		Cache:  &Cache{Dir: filepath.Join(t.TempDir(), "cache")},
		Policy: Policy{AllowNet: rules(t, strings.TrimPrefix(srv.URL, "http://"))},
	}, res, loopbackDial(t))
	code, body := ask(t, sock, get(strings.TrimPrefix(srv.URL, "http://"), "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"))
	if code != http.StatusForbidden || !strings.Contains(body, "to 10.1.2.3:80 (internal.example, private address)") {
		t.Errorf("got %d %q, want 403 for internal.example", code, body)
	}
}

func TestProxyRejectsNonProxyRequests(t *testing.T) {
	sock, _ := startProxy(t, Options{}, nil, noDial(t))
	for _, raw := range []string{
		"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET ftp://mirror.example/ HTTP/1.1\r\nHost: mirror.example\r\n\r\n",
	} {
		if code, _ := ask(t, sock, raw); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", firstLine(raw), code)
		}
	}
	for _, raw := range []string{
		connect("mirror.example:0"),
		connect("bad!name.example:443"),
	} {
		if code, _ := ask(t, sock, raw); code != http.StatusBadGateway {
			t.Errorf("%q: status %d, want 502", firstLine(raw), code)
		}
	}
}

// loopbackServer is a server on the host's loopback with something the
// guest must not see unless the user says so.
func loopbackServer(t *testing.T) (hostport, port string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host secret")
	}))
	t.Cleanup(srv.Close)
	hostport = strings.TrimPrefix(srv.URL, "http://")
	_, port, _ = net.SplitHostPort(hostport)
	return hostport, port
}

// A server on 127.0.0.1 is out of reach by default, and the refusal is
// reported once.
func TestProxyRefusesLoopbackServer(t *testing.T) {
	hostport, _ := loopbackServer(t)
	sock, notices := startProxy(t, Options{}, nil, noDial(t))
	want := "dibvm: egress: refused a connection from the helper VM to " + hostport + " (loopback address); to allow it, add --allow-net 127.0.0.1\n"
	for _, raw := range []string{get(hostport, "/"), connect(hostport)} {
		code, body := ask(t, sock, raw)
		if code != http.StatusForbidden || body != want {
			t.Errorf("%s: %d %q\nwant 403 %q", firstLine(raw), code, body, want)
		}
	}
	if got := notices.String(); got != want {
		t.Errorf("reported %q\nwant once %q", got, want)
	}
}

// --allow-net 127.0.0.1:PORT opens that server, by address or by a name
// the user opened, and no other port.
func TestProxyAllowNetOpensLoopbackServer(t *testing.T) {
	hostport, port := loopbackServer(t)
	other, _ := loopbackServer(t)
	res := &fakeResolver{addrs: map[string][]string{"cacher.example": {"127.0.0.1"}}}
	sock, notices := startProxy(t, Options{
		Policy: Policy{AllowNet: rules(t, hostport+",cacher.example")},
	}, res, loopbackDial(t))
	if code, body := ask(t, sock, get(hostport, "/")); code != http.StatusOK || body != "host secret" {
		t.Errorf("GET through the proxy: %d %q", code, body)
	}
	if code, body := tunnel(t, sock, hostport, "/"); code != http.StatusOK || body != "host secret" {
		t.Errorf("GET through CONNECT: %d %q", code, body)
	}
	if code, body := ask(t, sock, get("cacher.example:"+port, "/")); code != http.StatusOK || body != "host secret" {
		t.Errorf("GET by an opened name: %d %q", code, body)
	}
	if code, body := ask(t, sock, get(other, "/")); code != http.StatusForbidden {
		t.Errorf("GET from another port: %d %q, want 403", code, body)
	}
	if n := strings.Count(notices.String(), "\n"); n != 1 {
		t.Errorf("%d refusals reported, want 1 (the other port):\n%s", n, notices)
	}
}

// With --allow-only, a name not on the list is refused, public or not,
// and with only names in either flag it is not even looked up; what
// --allow-net opens stays reachable.
func TestProxyAllowOnly(t *testing.T) {
	_, port := loopbackServer(t)
	res := &fakeResolver{addrs: map[string][]string{
		"public.example": {"151.101.2.132"},
		"mirror.example": {"151.101.2.133"},
		"cacher.example": {"127.0.0.1"},
	}}
	sock, notices := startProxy(t, Options{
		Policy: Policy{AllowOnly: rules(t, "mirror.example"), AllowNet: rules(t, "cacher.example:"+port)},
	}, res, loopbackDial(t))
	want := "dibvm: egress: refused a connection from the helper VM to public.example:80 (not named by --allow-only); to allow it, add --allow-only public.example\n"
	if code, body := ask(t, sock, get("public.example", "/")); code != http.StatusForbidden || body != want {
		t.Errorf("GET public.example: %d %q\nwant 403 %q", code, body, want)
	}
	if code, _ := ask(t, sock, connect("public.example:443")); code != http.StatusForbidden {
		t.Errorf("CONNECT public.example:443: %d, want 403", code)
	}
	if res.wasAsked("public.example") {
		t.Error("the proxy looked up a name that --allow-only does not name")
	}
	if code, body := ask(t, sock, get("cacher.example:"+port, "/")); code != http.StatusOK || body != "host secret" {
		t.Errorf("GET cacher.example:%s, opened by --allow-net: %d %q", port, code, body)
	}
	if n := strings.Count(notices.String(), "\n"); n != 1 {
		t.Errorf("%d refusals reported, want 1:\n%s", n, notices)
	}

	// A CIDR on the list means any name may resolve into it: names are
	// looked up, and those outside it refused.
	sock, _ = startProxy(t, Options{Policy: Policy{AllowOnly: rules(t, "198.51.100.0/24")}}, res, noDial(t))
	want = "dibvm: egress: refused a connection from the helper VM to 151.101.2.132:80 (public.example, not named by --allow-only); to allow it, add --allow-only public.example or --allow-only 151.101.2.132\n"
	if code, body := ask(t, sock, get("public.example", "/")); code != http.StatusForbidden || body != want {
		t.Errorf("GET public.example: %d %q\nwant 403 %q", code, body, want)
	}
}

// A guest that tries many local addresses fills no terminal: the proxy
// reports maxReports of them and then says it stops.
func TestProxyReportsBounded(t *testing.T) {
	sock, notices := startProxy(t, Options{}, nil, noDial(t))
	for i := range maxReports + 20 {
		ask(t, sock, get(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), "/"))
	}
	lines := strings.Split(strings.TrimSuffix(notices.String(), "\n"), "\n")
	if len(lines) != maxReports+1 || !strings.Contains(lines[maxReports], "reporting no more") {
		t.Errorf("%d lines reported, want %d and a last one saying no more are", len(lines), maxReports+1)
	}
}

// listenProxy makes a proxy on a unix socket that does not serve yet, so
// that a test can replace its view of the host first.
func listenProxy(sock string, o Options) (*Proxy, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	return newProxy(ln, o), nil
}
