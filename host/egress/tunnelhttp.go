package egress

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// A build reaches a server on the host's loopback (apt-cacher-ng, a
// stand-in repository) through a tunnel: the guest carries each
// connection to the address through CONNECT (see loopback.go), so the
// tools talk plain HTTP to the server through it, unseen. Where the
// build's downloads are recorded (Options.Served), the proxy reads such
// a tunnel as HTTP when the client's first bytes are a request, and
// serves the request as it serves a proxied one: a package from the
// cache, kept and recorded; anything else passed to the server, its
// answer passed back. Any other protocol is spliced as before, the
// server's side from the start, so a server that speaks first (SSH,
// FTP) is heard.

// httpMethods are the first bytes of a client's HTTP request.
var httpMethods = [][]byte{[]byte("GET /"), []byte("HEAD /"), []byte("POST /"), []byte("PUT /"), []byte("OPTIONS /"), []byte("DELETE /")}

// readsHTTP reports whether the tunnel to hostport is one to read as
// HTTP: its downloads are recorded, and it leads to the host's loopback.
func (p *Proxy) readsHTTP(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return p.served != nil && err == nil && ap.Addr().Unmap().IsLoopback()
}

// spliceOrServeHTTP passes what the server sends to the client from the
// start and waits for the client's first bytes: a request is served as
// HTTP (see serveHTTP), the server's connection unused; anything else is
// spliced to the server.
func (p *Proxy) spliceOrServeHTTP(c net.Conn, br *bufio.Reader, limit *headerLimit, up net.Conn, hostport string) {
	down := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(c, up)
		down <- n
	}()
	if _, err := br.Peek(1); err != nil {
		up.Close()
		<-down
		return
	}
	// An HTTP client writes its request line at once.
	first, _ := br.Peek(min(br.Buffered(), len("OPTIONS /")))
	isHTTP := false
	for _, m := range httpMethods {
		isHTTP = isHTTP || bytes.HasPrefix(first, m)
	}
	if !isHTTP {
		io.Copy(up, br)
		closeWrite(up)
		<-down
		closeWrite(c)
		return
	}
	up.Close()
	if n := <-down; n > 0 {
		return // the server spoke first: no HTTP server
	}
	p.serveHTTP(c, br, limit, hostport)
}

// serveHTTP serves one request of a tunnel to hostport, as forward
// serves a proxied one, and closes the connection after it: the client
// opens another tunnel for the next.
func (p *Proxy) serveHTTP(c net.Conn, br *bufio.Reader, limit *headerLimit, hostport string) {
	limit.n = maxHeaderBytes
	timer := time.AfterFunc(headerTimeout, func() { c.Close() })
	req, err := http.ReadRequest(br)
	stopped := timer.Stop()
	if err != nil || !stopped {
		return
	}
	limit.n = -1
	req.URL.Scheme, req.URL.Host = "http", hostport
	if req.Method == http.MethodGet && cacheable(req.URL) && req.Header.Get("Authorization") == "" {
		p.cache.serve(c, req, p.client.Do, p.served)
		return
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, req.URL.String(), req.Body)
	if err != nil {
		writeError(c, http.StatusBadRequest, err.Error())
		return
	}
	out.Header = req.Header.Clone()
	out.ContentLength = req.ContentLength
	// The transport, not the client: a redirect goes back to the tool,
	// as through the tunnel.
	resp, err := p.client.Transport.RoundTrip(out)
	if err != nil {
		refuse(c, err)
		return
	}
	defer resp.Body.Close()
	resp.Close = true
	resp.Write(c)
}
