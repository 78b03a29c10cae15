// Package hostloopback makes the host's loopback addresses that a
// build's settings name mean the host's services inside the helper VM,
// as they do on DIB's host. For each address (127.0.0.1:3142, say) it
// listens on the same address in the VM, whose network the hooks and the
// chroot share, and carries each connection through the egress proxy's
// CONNECT to that address on the host. Rewriting the settings instead
// would show hooks values the caller did not give, and leaving the
// address to the proxy would miss every tool that ignores proxies or
// honours no_proxy; a listener serves all of them alike. The proxy's
// policy still decides: a refused address is reported by the host, and
// the connection here is closed.
package hostloopback

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Relays are the listeners of one build.
type Relays struct {
	proxy string // host:port of the egress proxy
	lns   []net.Listener
	wg    sync.WaitGroup
}

// Start listens on each of addrs and relays what arrives through the
// HTTP proxy at proxyURL (the build's http_proxy). An address already in
// use in the VM is an error that names it: nothing of the helper's own
// listens on the loopback, so only something the build started could
// hold it.
func Start(addrs []string, proxyURL string) (*Relays, error) {
	if len(addrs) == 0 {
		return &Relays{}, nil
	}
	u, err := url.Parse(proxyURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the host's loopback (%v) needs the egress proxy, and http_proxy is %q", addrs, proxyURL)
	}
	r := &Relays{proxy: u.Host}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("carry the host's %s into the helper VM: %w", a, err)
		}
		r.lns = append(r.lns, ln)
		r.wg.Add(1)
		go r.serve(ln)
	}
	return r, nil
}

// Close stops listening; connections being relayed go on until either
// end closes them.
func (r *Relays) Close() error {
	for _, ln := range r.lns {
		ln.Close()
	}
	r.wg.Wait()
	return nil
}

func (r *Relays) serve(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c, ln.Addr().String())
	}
}

// relay carries c to addr on the host, through the proxy.
func (r *Relays) relay(c net.Conn, addr string) {
	defer c.Close()
	up, err := Dial(r.proxy, addr)
	if err != nil {
		// The host has said why, when its policy refused; the client
		// sees its connection closed, as by a service that is not there.
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

// Dial asks the HTTP proxy at proxy to CONNECT to addr and returns the
// tunnel, or the proxy's answer as an error.
func Dial(proxy, addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, errors.New(resp.Status)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// bufferedConn is a connection of which the first bytes were read
// ahead, with the proxy's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func closeWrite(c net.Conn) {
	if b, ok := c.(*bufferedConn); ok {
		c = b.Conn
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
