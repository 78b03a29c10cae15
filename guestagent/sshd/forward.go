package sshd

import (
	"io"
	"log"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Forwarding is RFC 4254's remote port forwarding, the server's half
// (ssh -R): on the host's "tcpip-forward" request the agent listens on
// that address in the guest and carries each connection to the host as a
// "forwarded-tcpip" channel. A helper VM without a network interface
// reaches the host's egress proxy this way, over the agent's own
// connection, whatever carries that connection (see host/machine). Only
// addresses in s.Forwardable are taken, so the host cannot make the agent
// listen anywhere else.

// forwardRequest is the payload of tcpip-forward and cancel-tcpip-forward.
type forwardRequest struct {
	Addr string
	Port uint32
}

// forwardedChannel is the payload of a forwarded-tcpip channel open.
type forwardedChannel struct {
	Addr       string
	Port       uint32
	OriginAddr string
	OriginPort uint32
}

// forwards are the listeners of one connection, closed with it.
type forwards struct {
	mu  sync.Mutex
	lns map[string]net.Listener
}

func (f *forwards) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, ln := range f.lns {
		ln.Close()
		delete(f.lns, k)
	}
}

// listen starts forwarding addr:port to conn, if it is an address the
// server forwards.
func (s *Server) listen(conn ssh.Conn, f *forwards, req forwardRequest) bool {
	addr := net.JoinHostPort(req.Addr, strconv.Itoa(int(req.Port)))
	if !s.Forwardable[addr] {
		log.Printf("refused to forward %s: not an address this agent forwards", addr)
		return false
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Printf("forward %s: %v", addr, err)
		return false
	}
	f.mu.Lock()
	if old := f.lns[addr]; old != nil {
		old.Close()
	}
	f.lns[addr] = ln
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go forward(conn, c, req)
		}
	}()
	return true
}

func (f *forwards) cancel(req forwardRequest) bool {
	addr := net.JoinHostPort(req.Addr, strconv.Itoa(int(req.Port)))
	f.mu.Lock()
	defer f.mu.Unlock()
	ln := f.lns[addr]
	if ln == nil {
		return false
	}
	delete(f.lns, addr)
	ln.Close()
	return true
}

// forward carries one accepted connection to the host.
func forward(conn ssh.Conn, c net.Conn, req forwardRequest) {
	defer c.Close()
	origin, _ := c.RemoteAddr().(*net.TCPAddr)
	payload := forwardedChannel{Addr: req.Addr, Port: req.Port}
	if origin != nil {
		payload.OriginAddr, payload.OriginPort = origin.IP.String(), uint32(origin.Port)
	}
	ch, reqs, err := conn.OpenChannel("forwarded-tcpip", ssh.Marshal(payload))
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{})
	go func() {
		io.Copy(ch, c)
		ch.CloseWrite()
		close(done)
	}()
	io.Copy(c, ch)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
	ch.Close()
}
