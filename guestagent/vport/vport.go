// Package vport finds and opens a virtio-serial port by name, and adapts it
// to a net.Conn for the SSH server.
package vport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Find returns the device path of the port called name, waiting up to
// timeout for the driver to create it.
func Find(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(p)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port named %s after %s (is virtio_console loaded?)", name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Conn is an open port. Until the host has sent its first byte, a read
// that finds no host attached (EOF) waits and tries again; after that, EOF
// means the host went away.
type Conn struct {
	f       *os.File
	started bool
}

// Open opens the port device.
func Open(dev string) (*Conn, error) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &Conn{f: f}, nil
}

func (c *Conn) Read(p []byte) (int, error) {
	for {
		n, err := c.f.Read(p)
		if n > 0 {
			c.started = true
			return n, nil
		}
		if errors.Is(err, io.EOF) && !c.started {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err == nil {
			continue
		}
		return 0, err
	}
}

func (c *Conn) Write(p []byte) (int, error)        { return c.f.Write(p) }
func (c *Conn) Close() error                       { return c.f.Close() }
func (c *Conn) LocalAddr() net.Addr                { return addr{} }
func (c *Conn) RemoteAddr() net.Addr               { return addr{} }
func (c *Conn) SetDeadline(t time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(t time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(t time.Time) error { return nil }

type addr struct{}

func (addr) Network() string { return "virtio-serial" }
func (addr) String() string  { return "host" }
