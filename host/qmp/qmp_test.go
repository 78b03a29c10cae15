package qmp

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// QEMU binds its monitor's socket, which makes the file, before it
// listens on it; a dial in between is refused. Dial waits it out.
func TestDialWaitsForTheListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := syscall.Listen(fd, 1); err != nil {
			t.Error(err)
			return
		}
		ln, err := net.FileListener(os.NewFile(uintptr(fd), path))
		if err != nil {
			t.Error(err)
			return
		}
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		// A QMP greeting, and the answer to qmp_capabilities.
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}` + "\n"))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		c.Write([]byte(`{"return": {}}` + "\n"))
		r.ReadString('\n') // until the monitor closes
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial while QEMU had yet to listen: %v", err)
	}
	mon.Close()
}
