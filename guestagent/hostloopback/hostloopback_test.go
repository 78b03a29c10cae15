package hostloopback

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// standInProxy is a stand-in, on the loopback, for the host's egress
// proxy, which the guest reaches at 10.0.2.100:3128: it answers CONNECT
// to open (the real proxy's policy decides there) by joining the
// connection to it, and anything else with a 403.
func standInProxy(t *testing.T, open string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect || req.Host != open {
					io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp", open)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// echoServer answers each line with the same line, upper-cased.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					io.WriteString(c, strings.ToUpper(s.Text())+"\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// The relay listens where the service is and carries the bytes both
// ways through the proxy. (Here both are on the test's loopback, so the
// relay takes a free port and is told the service's address through the
// stand-in, which opens only it.)
func TestRelayCarriesThroughProxy(t *testing.T) {
	service := echoServer(t)
	r := &Relays{proxy: strings.TrimPrefix(standInProxy(t, service), "http://")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			r.relay(c, service)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello host\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if line != "HELLO HOST\n" {
		t.Errorf("through the relay: %q, %v", line, err)
	}
}

// A destination the proxy refuses ends the guest's connection, as a
// service that is not there would.
func TestRelayClosesWhatTheProxyRefuses(t *testing.T) {
	proxy := standInProxy(t, "127.0.0.1:1")
	r, err := Start([]string{"127.0.0.1:0"}, proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	// Closed with the request unread, the connection may end in a reset.
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); len(b) != 0 || ok && ne.Timeout() {
		t.Errorf("refused: read %q, %v; want the connection closed", b, err)
	}
}

func TestDialReportsTheProxysAnswer(t *testing.T) {
	proxy := strings.TrimPrefix(standInProxy(t, "127.0.0.1:1"), "http://")
	if _, err := Dial(proxy, "127.0.0.1:2"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Dial to a refused address: %v, want the 403", err)
	}
}

// An address something in the VM already holds is an error naming it;
// so is a build with addresses to carry and no proxy.
func TestStartErrors(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	if _, err := Start([]string{"127.0.0.1:0", addr}, "http://10.0.2.100:3128"); err == nil || !strings.Contains(err.Error(), "the host's "+addr) {
		t.Errorf("Start on a held address: %v", err)
	}
	if _, err := Start([]string{"127.0.0.1:0"}, ""); err == nil || !strings.Contains(err.Error(), "http_proxy") {
		t.Errorf("Start without a proxy: %v", err)
	}
	r, err := Start(nil, "")
	if err != nil {
		t.Fatalf("nothing to carry: %v", err)
	}
	r.Close()
}
