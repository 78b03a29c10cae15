package egress

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Where downloads are recorded, a tunnel to the host's loopback that
// carries HTTP is served as HTTP: a package is recorded with its size
// and digest, an index passes through; a tunnel that carries another
// protocol, whether its client or its server speaks first, and whoever
// closes first, is spliced as before.
func TestTunnelToLoopbackRecordsHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	var mu sync.Mutex
	var recorded []string
	o := Options{Policy: Policy{AllowNet: rules(t, hostport)}, Served: func(u string, size int64, sum string) {
		mu.Lock()
		defer mu.Unlock()
		recorded = append(recorded, fmt.Sprintf("%s %d %s", u, size, sum))
	}}
	sock, _ := startProxy(t, o, nil, loopbackDial(t))
	rpm := "/BaseOS/Packages/bash-5.2.26-3.el9.x86_64.rpm"
	for _, path := range []string{rpm, "/BaseOS/repodata/repomd.xml"} {
		if code, body := tunnel(t, sock, hostport, path); code != http.StatusOK || body != "served "+path {
			t.Errorf("GET %s through the tunnel: %d %q", path, code, body)
		}
	}
	mu.Lock()
	sum := sha256.Sum256([]byte("served " + rpm))
	if want := []string{fmt.Sprintf("%s %d %x", srv.URL+rpm, len("served "+rpm), sum)}; strings.Join(recorded, " ") != strings.Join(want, " ") {
		t.Errorf("recorded %q, want %q", recorded, want)
	}
	mu.Unlock()

	// An echo server, which a client speaks to first; and a server that
	// speaks first, as SSH's does.
	for _, c := range []struct {
		name  string
		serve func(net.Conn)
		talk  func(*testing.T, net.Conn, *bufio.Reader)
	}{
		{"a client that speaks first", func(c net.Conn) { io.Copy(c, c) }, func(t *testing.T, c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "PING\n")
			if line, _ := br.ReadString('\n'); line != "PING\n" {
				t.Errorf("echoed %q", line)
			}
		}},
		{"a server that speaks and closes", func(c net.Conn) { io.WriteString(c, "bye\n") }, func(t *testing.T, c net.Conn, br *bufio.Reader) {
			if line, _ := br.ReadString('\n'); line != "bye\n" {
				t.Errorf("read %q", line)
			}
			if rest, err := br.ReadString('\n'); err != io.EOF {
				t.Errorf("after the server's close: %q, %v, want EOF", rest, err)
			}
		}},
		{"a client that waits for the server's close", func(c net.Conn) {
			line, _ := bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "got "+line)
		}, func(t *testing.T, c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "hi\n")
			if all, err := io.ReadAll(br); err != nil || string(all) != "got hi\n" {
				t.Errorf("read %q, %v, want the answer and EOF", all, err)
			}
		}},
		{"a server that speaks first", func(c net.Conn) {
			io.WriteString(c, "SSH-2.0-test\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "got "+line)
		}, func(t *testing.T, c net.Conn, br *bufio.Reader) {
			if line, _ := br.ReadString('\n'); line != "SSH-2.0-test\r\n" {
				t.Errorf("banner %q", line)
			}
			io.WriteString(c, "SSH-2.0-client\r\n")
			if line, _ := br.ReadString('\n'); line != "got SSH-2.0-client\r\n" {
				t.Errorf("answer %q", line)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { defer conn.Close(); c.serve(conn) }()
				}
			}()
			addr := ln.Addr().String()
			sock, _ := startProxy(t, Options{Policy: Policy{AllowNet: rules(t, addr)}, Served: func(string, int64, string) {}}, nil, loopbackDial(t))
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			io.WriteString(conn, connect(addr))
			if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			c.talk(t, conn, br)
		})
	}
}
