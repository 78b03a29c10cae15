package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// connect serves a Server over a unix socket (net.Pipe would deadlock:
// both ends send their version first) and returns a client of it.
func connect(t *testing.T, s func(*Server)) *ssh.Client {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	clientKey, _ := ssh.NewSignerFromKey(clientPriv)
	srv := New(hostKey, clientKey.PublicKey())
	s(srv)
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if a, err := ln.Accept(); err == nil {
			srv.Serve(a)
		}
	}()
	b, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(b, "guest", &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(clientKey)},
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ssh.NewClient(conn, chans, reqs)
	t.Cleanup(func() { c.Close() })
	return c
}

// The host asks the agent to listen at the proxy's address; a connection
// made there in the guest reaches the host as a forwarded channel, both
// ways. Any other address is refused.
func TestForwarding(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	c := connect(t, func(s *Server) { s.Forwardable = map[string]bool{addr: true} })

	if _, err := c.Listen("tcp", "127.0.0.1:1"); err == nil {
		t.Error("the agent listened at an address it was not given")
	}
	ln, err := c.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		h, err := ln.Accept()
		if err != nil {
			return
		}
		defer h.Close()
		b, _ := io.ReadAll(h)
		h.Write([]byte(strings.ToUpper(string(b))))
	}()
	g, err := net.Dial("tcp", addr) // in the guest
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Write([]byte("hello proxy"))
	g.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(g)
	if string(got) != "HELLO PROXY" {
		t.Errorf("the guest read %q back", got)
	}
	ln.Close() // cancel-tcpip-forward
	if g2, err := net.Dial("tcp", addr); err == nil {
		g2.Close()
		t.Error("the agent still listens after the host cancelled the forwarding")
	}
}
