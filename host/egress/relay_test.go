package egress

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// TestMain runs the test binary as the relay when asked to, so that the
// tests run Relay as QEMU does: a process of its own whose stdin and
// stdout are the guest's connection.
func TestMain(m *testing.M) {
	if sock := os.Getenv("DIBVM_TEST_RELAY"); sock != "" {
		os.Exit(Relay(sock))
	}
	os.Exit(m.Run())
}

// startRelay starts a relay to the proxy at sock, with a guest side that
// stays open until the test ends, and returns what the relay writes to
// the guest and the guest's sending end.
func startRelay(t *testing.T, sock string) (*exec.Cmd, *syncBuffer, io.Writer, chan error) {
	t.Helper()
	guestIn, toRelay, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guestIn.Close(); toRelay.Close() })
	out := &syncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DIBVM_TEST_RELAY="+sock)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = guestIn, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, out, toRelay, done
}

func relayProxy(t *testing.T) string {
	t.Helper()
	sock, _ := startProxy(t, Options{}, nil, noDial(t))
	if err := os.Mkdir(relaySlots(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	return sock
}

// A relay ends when the proxy ends the connection, although the guest
// holds its side open: past the proxy's bounds, a guest's idle
// connections must not keep relays alive.
func TestRelayEndsWithTheProxy(t *testing.T) {
	sock := relayProxy(t)
	_, out, guest, done := startRelay(t, sock)
	// The proxy answers a request that is not a proxy request and closes.
	io.WriteString(guest, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the relay ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay still runs 10s after the proxy closed its connection")
	}
	if !strings.HasPrefix(out.String(), "HTTP/1.1 400 Bad Request") {
		t.Errorf("the guest got %q", out.String())
	}
}

// With every slot taken, a relay exits at once without reaching the
// proxy; once one is free, a relay runs again.
func TestRelayBound(t *testing.T) {
	sock := relayProxy(t)
	var held []*flock.Flock
	for i := range maxRelays {
		l := flock.New(filepath.Join(relaySlots(sock), strconv.Itoa(i)))
		if ok, err := l.TryLock(); !ok || err != nil {
			t.Fatalf("slot %d: %v %v", i, ok, err)
		}
		held = append(held, l)
	}
	_, out, _, done := startRelay(t, sock)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "128 relays already run") {
			t.Errorf("with every slot taken, the relay ended with %v, saying %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("with every slot taken, the relay still runs after 10s")
	}

	held[17].Unlock()
	_, out, guest, done := startRelay(t, sock)
	io.WriteString(guest, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-done:
		if !strings.HasPrefix(out.String(), "HTTP/1.1 400") {
			t.Errorf("with a slot free, the relay got %q from the proxy", out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("with a slot free, the relay still runs after 10s")
	}
	for _, l := range held {
		l.Unlock()
	}
}

// A relay killed with SIGKILL frees its slot: the kernel drops its lock.
func TestRelaySlotFreedOnKill(t *testing.T) {
	sock := relayProxy(t)
	cmd, _, _, done := startRelay(t, sock)
	var mine string
	for range 250 {
		entries, _ := os.ReadDir(relaySlots(sock))
		for _, e := range entries {
			probe := flock.New(filepath.Join(relaySlots(sock), e.Name()))
			if ok, _ := probe.TryRLock(); ok {
				probe.Unlock()
			} else {
				mine = e.Name()
			}
		}
		if mine != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if mine == "" {
		t.Fatal("the relay holds no slot")
	}
	cmd.Process.Kill()
	<-done
	l := flock.New(filepath.Join(relaySlots(sock), mine))
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Errorf("slot %s is still taken after its relay was killed: %v", mine, err)
	}
	l.Unlock()
}
