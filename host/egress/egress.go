// Package egress is the helper VM's only way out to the network.
//
// QEMU's user networking, left open, forwards the guest's connections to
// 10.0.2.2 to the host's loopback: an untrusted element could talk to any
// service that listens only on localhost, and to the cloud metadata
// service of a CI runner. So the VM's network is restricted to one port,
// which QEMU forwards (guestfwd) to a relay process per connection, which
// hands it to this proxy on a unix socket. The proxy serves HTTP proxy
// requests (plain requests and CONNECT) and refuses, by default,
// everything local to the host: loopback, unspecified, link-local,
// private, CGNAT, multicast and other special-purpose addresses, and the
// addresses of the host's own interfaces (see Local). The user opens
// destinations with a Policy (--allow-net) and may restrict the guest to
// a list of them (--allow-only). The proxy resolves every name itself,
// checks every address the name has, and dials only an address it
// checked, so a name cannot resolve differently between check and use.
package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dibvm/dibvm/host/termsafe"
)

// GuestAddr is where the guest finds the proxy.
const GuestAddr = "10.0.2.100:3128"

// maxReports bounds the refusals reported, each once (see notice).
const maxReports = 100

// Options configure a Proxy.
type Options struct {
	// Cache, when set, keeps the downloads that never change (see Cache).
	Cache *Cache
	// Policy is what the user opened and restricted.
	Policy Policy
	// Notices gets a line for each refused (name, address), once.
	Notices io.Writer
	// Signed are the sources whose files the cache keeps only once they
	// match a signed SHA256SUMS (see SignedSource); needs Cache.
	Signed []SignedSource
	// Offline serves Signed sources' files from the cache alone.
	Offline bool
	// Services are host names the proxy answers itself (see Service).
	Services map[string]Service
	// Served, when set, hears of each file whose URL names its content
	// for good (see cacheable) that was sent whole to the guest or to a
	// service, from the network or the cache: its URL, size and SHA-256.
	// The build's lock file is made of these.
	Served func(url string, size int64, sha256 string)
	// Pins, when set, holds the build to a lock file (--packages-from):
	// it gives the SHA-256 that each package file and each suite's
	// release file (see Pinnable) must have, or an error that says why
	// the build may not have it. Such a file is served from the cache or
	// fetched and checked whole before the guest gets a byte. Needs
	// Cache.
	Pins func(u *url.URL) (sha256 string, err error)
}

// A Service answers the guest's plain-HTTP requests for one host name on
// the host, where work that needs no root runs at native speed rather
// than emulated. It gets what it needs from the network through fetch,
// which is the proxy's Fetch: the guest cannot reach through a service
// anything it could not reach itself. Names should be under .invalid,
// which no DNS server answers, so that no real host is shadowed.
type Service func(req *http.Request, fetch func(ctx context.Context, url, sha256 string) (io.ReadCloser, error)) *http.Response

// Proxy accepts proxied connections from the guest.
type Proxy struct {
	ln       net.Listener
	policy   Policy
	own      []netip.Prefix // the host's addresses and networks, refused like loopback
	cache    *Cache
	signed   []SignedSource
	offline  bool
	services map[string]Service
	served   func(url string, size int64, sha256 string)
	pins     func(u *url.URL) (string, error)
	client   *http.Client // for cached downloads, dialing through dial
	notices  io.Writer

	// lookup resolves names and dialContext connects to a checked
	// address; tests replace them to see that a refused address is never
	// dialed.
	lookup      func(ctx context.Context, network, host string) ([]netip.Addr, error)
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// pinned is what the signed sources' downloads hold in temporary
	// files now, at most maxPinned (see fetchChecked).
	pinned    atomic.Int64
	maxPinned int64

	mu       sync.Mutex
	reported map[string]bool // "name addr" of the refusals reported
	muted    bool            // past maxReports
}

// Listen starts a proxy on the unix socket at path, refusing what
// o.Policy does not allow. It takes the host's own addresses now.
func Listen(path string, o Options) (*Proxy, error) {
	if err := os.Mkdir(relaySlots(path), 0o700); err != nil {
		return nil, fmt.Errorf("make the relays' slots: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	p, err := Serve(ln, o)
	if err != nil {
		ln.Close()
	}
	return p, err
}

// Serve starts a proxy on connections accepted from ln, which it closes
// when it is closed: the listener of the guest's forwarded connections
// when the guest has no network interface of its own (see host/machine).
func Serve(ln net.Listener, o Options) (*Proxy, error) {
	if o.Pins != nil && o.Cache == nil {
		return nil, errPinsNeedCache
	}
	own, err := HostAddrs()
	if err != nil {
		return nil, err
	}
	p := newProxy(ln, o)
	p.own = own
	go p.serve()
	return p, nil
}

var errPinsNeedCache = errors.New("a lock file's pins need the image cache")

// newProxy makes a proxy that listens but does not serve yet.
func newProxy(ln net.Listener, o Options) *Proxy {
	if o.Notices == nil {
		o.Notices = io.Discard
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	p := &Proxy{
		ln: ln, policy: o.Policy, cache: o.Cache, notices: o.Notices, signed: o.Signed, offline: o.Offline,
		lookup: net.DefaultResolver.LookupNetIP, dialContext: dialer.DialContext,
		reported: map[string]bool{}, services: o.Services, maxPinned: maxPinned, served: o.Served, pins: o.Pins,
	}
	p.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return p.dial(ctx, addr)
		},
		DisableCompression: true, // the cache keeps bytes as served
	}}
	return p
}

// Close stops accepting and waits for nothing: open tunnels end when the
// VM, their other end, goes away.
func (p *Proxy) Close() error {
	if p.ln == nil {
		return nil
	}
	return p.ln.Close()
}

// Bounds on what the guest can make the proxy hold. QEMU starts one
// relay process for each of the guest's connections, so their number is
// bounded too: a connection beyond maxConns is closed at once, and its
// relay exits. A request's line and headers are bounded in size and in
// time, as net/http's server bounds them.
const (
	maxConns       = 64
	maxHeaderBytes = 64 << 10
	headerTimeout  = time.Minute
)

func (p *Proxy) serve() {
	slots := make(chan struct{}, maxConns)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
			go func() {
				defer func() { <-slots }()
				p.handle(c)
			}()
		default:
			c.Close()
		}
	}
}

// headerLimit lets a request's line and headers through up to n bytes;
// the body and a tunnel's bytes then flow without bound.
type headerLimit struct {
	r io.Reader
	n int64 // < 0: no bound
}

func (l *headerLimit) Read(b []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(b)
	}
	if l.n == 0 {
		return 0, errors.New("request headers too large")
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

func (p *Proxy) handle(c net.Conn) {
	defer c.Close()
	limit := &headerLimit{r: c}
	br := bufio.NewReader(limit)
	for {
		limit.n = maxHeaderBytes
		// A timer, not a read deadline: a connection forwarded over the
		// agent's SSH channel has none (see host/machine).
		timer := time.AfterFunc(headerTimeout, func() { c.Close() })
		req, err := http.ReadRequest(br)
		stopped := timer.Stop()
		if err != nil || !stopped {
			return
		}
		limit.n = -1
		if req.Method == http.MethodConnect {
			p.tunnel(c, br, limit, req)
			return
		}
		if !p.forward(c, req) {
			return
		}
	}
}

// tunnel serves CONNECT host:port.
func (p *Proxy) tunnel(c net.Conn, br *bufio.Reader, limit *headerLimit, req *http.Request) {
	up, err := p.dial(req.Context(), req.Host)
	if err != nil {
		refuse(c, err)
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	if p.readsHTTP(req.Host) {
		p.spliceOrServeHTTP(c, br, limit, up, req.Host)
		return
	}
	splice(c, br, up)
}

// forward serves one plain-HTTP proxy request and reports whether the
// client connection can carry another.
func (p *Proxy) forward(c net.Conn, req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		writeError(c, http.StatusBadRequest, "dibvm: egress: want an absolute http:// URL or CONNECT")
		return false
	}
	if svc := p.services[strings.ToLower(req.URL.Hostname())]; svc != nil {
		p.serveLocal(c, req, svc)
		return false
	}
	if req.Method == http.MethodGet && (p.locked(req.URL) || (p.recordsReleases(req.URL) && req.Header.Get("Authorization") == "")) {
		p.serveRecorded(c, req)
		return false
	}
	if src := p.signedSource(req.URL); p.cache != nil && src != nil && req.Method == http.MethodGet {
		p.serveSigned(c, req, src)
		return false
	}
	if (p.cache != nil || p.served != nil) && req.Method == http.MethodGet && cacheable(req.URL) && req.Header.Get("Authorization") == "" {
		// The cache answers only what the guest may download: checked
		// first, a refusal is the same whether the file is kept or not.
		if _, err := p.destination(req.Context(), hostPort(req.URL)); err != nil {
			refuse(c, err)
			return false
		}
		p.cache.serve(c, req, p.client.Do, p.served)
		return false
	}
	up, err := p.dial(req.Context(), hostPort(req.URL))
	if err != nil {
		refuse(c, err)
		return false
	}
	defer up.Close()
	req.RequestURI = ""
	if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
		// As an HTTP client does with credentials in a URL.
		pw, _ := u.Password()
		req.SetBasicAuth(u.Username(), pw)
	}
	req.Header.Del("Proxy-Connection")
	req.Header.Set("Connection", "close")
	req.Close = true
	if err := req.Write(up); err != nil {
		return false
	}
	io.Copy(c, up)
	return false
}

// serveLocal answers a request for one of the proxy's own names. A
// service that panics on what the guest sent fails that request only.
func (p *Proxy) serveLocal(c net.Conn, req *http.Request, svc Service) {
	resp := func() (resp *http.Response) {
		defer func() {
			if r := recover(); r != nil {
				resp = nil
			}
		}()
		return svc(req, p.Fetch)
	}()
	if resp == nil {
		writeError(c, http.StatusInternalServerError, "dibvm: the host's service failed")
		return
	}
	defer resp.Body.Close()
	resp.Write(c)
}

// hostPort is the host and port a request for u connects to.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// dial resolves hostport, refuses it if the policy refuses any of its
// addresses, and connects to an address it checked. CONNECT, plain
// requests and the cache's downloads all come through here.
func (p *Proxy) dial(ctx context.Context, hostport string) (net.Conn, error) {
	addrs, err := p.destination(ctx, hostport)
	if err != nil {
		return nil, err
	}
	_, portText, _ := net.SplitHostPort(hostport)
	port, _ := strconv.ParseUint(portText, 10, 16)
	var errs []error
	for _, a := range addrs {
		c, err := p.dialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// destination is what dial checks before it connects: the addresses of
// hostport, all of them allowed, or why not. What the cache keeps is
// served only past the same check.
func (p *Proxy) destination(ctx context.Context, hostport string) ([]netip.Addr, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("bad destination %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad destination %q: want a port number", hostport)
	}
	return p.resolve(ctx, host, uint16(port))
}

// resolve returns the addresses of host, all of them checked, or a
// *Refused if the policy refuses any: a name with one public and one
// private address is refused as a whole, since the guest could not
// choose which one it gets.
func (p *Proxy) resolve(ctx context.Context, host string, port uint16) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if canonicalName(host) == "localhost" {
		addrs = p.policy.localhost(port, p.own)
	} else {
		if err := p.mayLookUp(host, port); err != nil {
			return nil, err
		}
		if addrs, err = p.lookup(ctx, "ip", host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s has no address", host)
		}
	}
	for i, a := range addrs {
		// The resolver may return IPv4 addresses in IPv6 form.
		a = a.Unmap().WithZone("")
		if r := p.policy.Check(host, a, port, p.own); r != nil {
			p.report(r)
			return nil, r
		}
		addrs[i] = a
	}
	return addrs, nil
}

// mayLookUp checks a host name the guest asked for before it is looked
// up: its form, and --allow-only's names.
func (p *Proxy) mayLookUp(host string, port uint16) error {
	name := canonicalName(host)
	// The name goes into the user's log: letters, digits and
	// punctuation of host names only.
	if name == "" || len(name) > 253 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
		return fmt.Errorf("bad destination %q: not a host name", host)
	}
	if !p.policy.mayReach(name, port) {
		r := &Refused{Name: name, Port: port, Reason: "not named by --allow-only", Flag: "--allow-only"}
		p.report(r)
		return r
	}
	return nil
}

// report writes a refusal to the notices, once for each name and address.
func (p *Proxy) report(r *Refused) {
	p.notice(r.Name+" "+r.Addr.String(), "dibvm: egress: "+r.Error())
}

// notice writes line to the notices once for each key, for at most
// maxReports keys: a guest that tries thousands of addresses or names
// must not flood the user's terminal. The line goes through termsafe:
// names and paths in it are the guest's choice.
func (p *Proxy) notice(key, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.reported[key]:
	case len(p.reported) < maxReports:
		p.reported[key] = true
		fmt.Fprintf(p.notices, "%s\n", termsafe.String(line))
	case !p.muted:
		p.muted = true
		fmt.Fprintf(p.notices, "dibvm: egress: refused more connections from the helper VM; reporting no more of them\n")
	}
}

func refuse(c net.Conn, err error) {
	var r *Refused
	if errors.As(err, &r) {
		writeError(c, http.StatusForbidden, "dibvm: egress: "+r.Error())
		return
	}
	writeError(c, http.StatusBadGateway, "dibvm: egress: "+err.Error())
}

func writeError(c net.Conn, code int, msg string) {
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		code, http.StatusText(code), len(msg)+1, msg)
}

// splice copies both ways until either side ends.
func splice(c net.Conn, br *bufio.Reader, up net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
