package egress

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A request whose headers never end is cut off at maxHeaderBytes: the
// proxy closes the connection rather than hold what the guest sends.
func TestProxyBoundsHeaders(t *testing.T) {
	sock, _ := startProxy(t, Options{}, nil, noDial(t))
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET http://example.org/ HTTP/1.1\r\nX-Long: ")
	chunk := strings.Repeat("A", 32<<10)
	var sent int
	for sent < 16<<20 {
		n, err := io.WriteString(c, chunk)
		sent += n
		if err != nil {
			break // the proxy closed the connection: what we want
		}
	}
	if sent >= 16<<20 {
		t.Errorf("the proxy took %d MiB of headers without closing", sent>>20)
	}
}

// Connections beyond maxConns are closed at once, so that a guest cannot
// make QEMU start relay processes without bound; the first ones stay.
func TestProxyBoundsConnections(t *testing.T) {
	sock, _ := startProxy(t, Options{}, nil, noDial(t))
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < maxConns; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // let the proxy take each one
	extra, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection %d: read gave %v, want the proxy to close it", maxConns+1, err)
	}
	// A held one still works.
	held[0].SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(held[0], "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b := make([]byte, 12)
	if _, err := io.ReadFull(held[0], b); err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 400") {
		t.Errorf("a held connection: %q, %v", b, err)
	}
}
