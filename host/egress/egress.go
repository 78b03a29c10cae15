// Package egress is the helper VM's only way out to the network.
//
// QEMU's user networking, left open, forwards the guest's connections to
// 10.0.2.2 to the host's loopback: an untrusted element could talk to any
// service that listens only on localhost, and to the cloud metadata
// service of a CI runner. So the VM's network is restricted to one port,
// which QEMU forwards (guestfwd) to a relay process per connection, which
// hands it to this proxy on a unix socket. The proxy serves HTTP proxy
// requests (plain requests and CONNECT) to any address except the host's
// own loopback, link-local and unspecified ones, and dials the address it
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
	"os"
	"strings"
	"time"
)

// GuestAddr is where the guest finds the proxy.
const GuestAddr = "10.0.2.100:3128"

// Proxy accepts proxied connections from the guest.
type Proxy struct {
	ln       net.Listener
	resolver *net.Resolver
	dialer   net.Dialer
	cache    *Cache
	client   *http.Client // for cached downloads, dialing through dial
	allow    func(net.IP) bool
}

// Listen starts a proxy on the unix socket at path. With a cache, the
// proxy keeps the downloads that never change in it (see Cache).
func Listen(path string, cache *Cache) (*Proxy, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, resolver: net.DefaultResolver, dialer: net.Dialer{Timeout: 30 * time.Second}, cache: cache, allow: allowed}
	p.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return p.dial(ctx, addr)
		},
		DisableCompression: true, // the cache keeps bytes as served
	}}
	go p.serve()
	return p, nil
}

// Close stops accepting and waits for nothing: open tunnels end when the
// VM, their other end, goes away.
func (p *Proxy) Close() error { return p.ln.Close() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method == http.MethodConnect {
			p.tunnel(c, br, req)
			return
		}
		if !p.forward(c, req) {
			return
		}
	}
}

// tunnel serves CONNECT host:port.
func (p *Proxy) tunnel(c net.Conn, br *bufio.Reader, req *http.Request) {
	up, err := p.dial(req.Context(), req.Host)
	if err != nil {
		refuse(c, err)
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	splice(c, br, up)
}

// forward serves one plain-HTTP proxy request and reports whether the
// client connection can carry another.
func (p *Proxy) forward(c net.Conn, req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		writeError(c, http.StatusBadRequest, "dibvm egress proxy: want an absolute http:// URL or CONNECT")
		return false
	}
	if p.cache != nil && req.Method == http.MethodGet && cacheable(req.URL) {
		p.cache.serve(c, req, p.client.Do)
		return false
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	up, err := p.dial(req.Context(), host)
	if err != nil {
		refuse(c, err)
		return false
	}
	defer up.Close()
	req.RequestURI = ""
	req.Header.Del("Proxy-Connection")
	req.Header.Set("Connection", "close")
	req.Close = true
	if err := req.Write(up); err != nil {
		return false
	}
	io.Copy(c, up)
	return false
}

// Refused is a destination the guest may not reach.
type Refused struct {
	Host string
	IP   net.IP
}

func (e *Refused) Error() string {
	return fmt.Sprintf("dibvm: the helper VM may not connect to %s (%s): loopback, link-local and unspecified addresses of the host are off limits", e.Host, e.IP)
}

// allowed reports whether the guest may reach ip.
func allowed(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast())
}

// dial resolves hostport, refuses it if any of its addresses is off
// limits, and connects to a checked address.
func (p *Proxy) dial(ctx context.Context, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	ips, err := p.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, a := range ips {
		if !p.allow(a.IP) {
			return nil, &Refused{Host: host, IP: a.IP}
		}
	}
	var lastErr error
	for _, a := range ips {
		c, err := p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(a.IP.String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func refuse(c net.Conn, err error) {
	var r *Refused
	if errors.As(err, &r) {
		writeError(c, http.StatusForbidden, r.Error())
		return
	}
	writeError(c, http.StatusBadGateway, "dibvm egress proxy: "+err.Error())
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

// RelayArg, as dibvm's first argument, runs the relay that QEMU starts for
// each guest connection: it joins its stdin and stdout to the proxy.
const RelayArg = "__dibvm-egress-relay"

// Relay is the relay's main.
func Relay(socket string) int {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dibvm egress relay: %v\n", err)
		return 1
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(c, os.Stdin); closeWrite(c); done <- struct{}{} }()
	go func() { io.Copy(os.Stdout, c); done <- struct{}{} }()
	<-done
	<-done
	return 0
}

// GuestfwdRule is the QEMU -netdev user guestfwd value that starts relay
// (this program) for each connection to GuestAddr.
func GuestfwdRule(relay, socket string) string {
	cmd := shellQuote(relay) + " " + RelayArg + " " + shellQuote(socket)
	// QEMU's option syntax escapes a comma by doubling it.
	return "tcp:" + GuestAddr + "-cmd:" + strings.ReplaceAll(cmd, ",", ",,")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
