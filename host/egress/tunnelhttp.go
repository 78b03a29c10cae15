package egress

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// A build reaches a server on the host's loopback (apt-cacher-ng, a
// stand-in repository) through a tunnel: the guest carries each
// connection to the address through CONNECT (see loopback.go), so the
// tools talk plain HTTP to the server through it, unseen. Where the
// build's downloads are recorded (Options.Served), the proxy reads such
// a tunnel as HTTP when the client's first bytes are a request, and
// serves the request as it serves a proxied one, but for the cache: a
// package recorded; anything else passed to the server, its answer
// passed back. Any other protocol is spliced as before, the
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
// start, and its close, and waits for the client's first bytes: a
// request is served as HTTP (see serveHTTP), the server's connection
// unused; anything else is spliced to the server.
func (p *Proxy) spliceOrServeHTTP(c net.Conn, br *bufio.Reader, limit *headerLimit, up net.Conn, hostport string) {
	var serving atomic.Bool // the server's connection is closed to serve HTTP
	down := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(c, up)
		if !serving.Load() {
			closeWrite(c) // the server's close, to the client
		}
		down <- n
	}()
	first := make(chan []byte, 1)
	go func() {
		br.Peek(1) // until the client speaks or closes
		// An HTTP client writes its request line at once.
		b, _ := br.Peek(min(br.Buffered(), len("OPTIONS /")))
		first <- b
	}()
	if isRequest(<-first) {
		serving.Store(true)
		up.Close()
		select {
		case n := <-down:
			if n == 0 {
				p.serveHTTP(c, br, limit, hostport)
			}
		case <-time.After(5 * time.Second):
			// The server spoke first and the client does not read:
			// the connection closes.
		}
		return
	}
	io.Copy(up, br)
	closeWrite(up)
	<-down
}

// isRequest reports whether b begins an HTTP request sent to a server.
func isRequest(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
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
	if req.Method == http.MethodGet && (p.locked(req.URL) || (p.recordsReleases(req.URL) && req.Header.Get("Authorization") == "")) {
		p.serveRecorded(c, req) // kept by content, which no later server can change
		return
	}
	if req.Method == http.MethodGet && cacheable(req.URL) && req.Header.Get("Authorization") == "" {
		// Recorded, not kept: a loopback server is a cache itself, or a
		// test's stand-in, whose port a later one may reuse for other
		// files under the same names.
		var uncached *Cache
		uncached.serve(c, req, p.client.Do, p.served)
		return
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, req.URL.String(), req.Body)
	if err != nil {
		writeError(c, http.StatusBadRequest, err.Error())
		return
	}
	out.Header = req.Header.Clone()
	out.Host = req.Host
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
