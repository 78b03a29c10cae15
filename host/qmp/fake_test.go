package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// command is one command a client sent the fake QEMU.
type command struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
}

// fakeQEMU is QEMU's monitor, in process, on a unix socket: it greets,
// answers qmp_capabilities, and answers every later command with the lines
// answer gives (events, then the reply; none leaves it unanswered).
type fakeQEMU struct {
	path   string
	answer func(command) []string
	// capabilities is the reply to qmp_capabilities; greet false sends
	// no greeting at all.
	capabilities string
	greet        bool

	mu   sync.Mutex
	seen []command
	eof  chan struct{} // closed when the client has gone
}

func newFakeQEMU(t *testing.T, answer func(command) []string) *fakeQEMU {
	f := &fakeQEMU{
		path:         filepath.Join(t.TempDir(), "qmp.sock"),
		answer:       answer,
		capabilities: `{"return": {}}`,
		greet:        true,
		eof:          make(chan struct{}),
	}
	return f
}

// start listens, and serves one client.
func (f *fakeQEMU) start(t *testing.T) {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		defer close(f.eof)
		f.serve(c)
	}()
}

func (f *fakeQEMU) serve(c net.Conn) {
	if !f.greet {
		c.Read(make([]byte, 1)) // until the client gives up
		return
	}
	c.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 9}, "package": ""}, "capabilities": ["oob"]}}` + "\n"))
	// Commands come without newlines between them: a stream of JSON.
	dec := json.NewDecoder(c)
	for first := true; ; first = false {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, cmd)
		f.mu.Unlock()
		lines := f.answer(cmd)
		if first {
			lines = []string{f.capabilities}
		}
		for _, l := range lines {
			if _, err := c.Write([]byte(l + "\n")); err != nil {
				return
			}
		}
	}
}

// commands are the names of the commands the fake has been sent.
func (f *fakeQEMU) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.seen {
		out = append(out, c.Execute)
	}
	return out
}

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dial starts f and connects to it. The monitor is closed at the test's
// end unless it failed: go-qemu's Disconnect waits for its reader, which
// an undrained event holds up for good.
func dial(t *testing.T, f *fakeQEMU) *Monitor {
	t.Helper()
	f.start(t)
	mon, err := Dial(bounded(t, 10*time.Second), f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			mon.Close()
		}
	})
	return mon
}

const event = `{"event": "RTC_CHANGE", "data": {"offset": 1}, "timestamp": {"seconds": 1, "microseconds": 2}}`

// qemu answers as QEMU would the commands the tests send.
func qemu(c command) []string {
	switch c.Execute {
	case "query-status":
		return []string{event, `{"return": {"status": "running", "running": true}}`}
	case "human-monitor-command":
		var args struct {
			Line string `json:"command-line"`
		}
		json.Unmarshal(c.Arguments, &args)
		b, _ := json.Marshal(map[string]string{"return": "you said " + args.Line})
		return []string{string(b)}
	case "device_del":
		return []string{`{"error": {"class": "DeviceNotFound", "desc": "Device 'nic9' not found"}}`}
	case "stop":
		return nil // never answered
	}
	return []string{`{"return": {}}`}
}

func TestRunCommandsAndReplies(t *testing.T) {
	f := newFakeQEMU(t, qemu)
	mon := dial(t, f)
	ctx := bounded(t, 10*time.Second)
	st, err := mon.Status(ctx)
	if err != nil || st != "running" {
		t.Fatalf("Status = %q, %v; want running", st, err)
	}
	var said string
	if err := mon.Run(ctx, "human-monitor-command", map[string]string{"command-line": "info version"}, &said); err != nil || said != "you said info version" {
		t.Errorf("Run with arguments: %q, %v", said, err)
	}
	if err := mon.Run(ctx, "cont", nil, nil); err != nil {
		t.Errorf("Run without a result: %v", err)
	}
	if err := mon.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	mon.Close()
	select {
	case <-f.eof:
	case <-time.After(5 * time.Second):
		t.Fatal("the monitor's connection is still open after Close")
	}
	want := []string{"qmp_capabilities", "query-status", "human-monitor-command", "cont", "quit"}
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("QEMU was sent %q, want %q", got, want)
	}
}

// An error QEMU answers is the command's error, and the monitor goes on.
func TestRunError(t *testing.T) {
	mon := dial(t, newFakeQEMU(t, qemu))
	ctx := bounded(t, 10*time.Second)
	err := mon.Run(ctx, "device_del", map[string]string{"id": "nic9"}, nil)
	if err == nil || err.Error() != "qmp device_del: Device 'nic9' not found" {
		t.Errorf("Run of a failing command: %v", err)
	}
	if st, err := mon.Status(ctx); err != nil || st != "running" {
		t.Errorf("after an error, Status = %q, %v", st, err)
	}
	select {
	case <-mon.Broken:
		t.Error("an error QEMU answered marked the monitor broken")
	default:
	}
}

// TestEventsDrained: events nobody reads must not hold up the replies
// behind them (go-qemu's event channel blocks its reader until drained).
func TestEventsDrained(t *testing.T) {
	mon := dial(t, newFakeQEMU(t, func(c command) []string {
		lines := make([]string, 200)
		for i := range lines {
			lines[i] = event
		}
		return append(lines, `{"return": {"status": "paused"}}`)
	}))
	ctx := bounded(t, 5*time.Second)
	for i := 0; i < 3; i++ {
		if st, err := mon.Status(ctx); err != nil || st != "paused" {
			t.Fatalf("Status behind 200 events: %q, %v", st, err)
		}
	}
}

// TestRunTimeout: a command QEMU does not answer ends with ctx, and the
// monitor is marked broken, once however many calls overrun.
func TestRunTimeout(t *testing.T) {
	mon := dial(t, newFakeQEMU(t, qemu))
	start := time.Now()
	err := mon.Run(bounded(t, 200*time.Millisecond), "stop", nil, nil)
	if !errors.Is(err, ErrTimeout) || err.Error() != "qmp: QEMU did not answer in time: stop" {
		t.Errorf("Run unanswered: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s past its deadline", d)
	}
	select {
	case <-mon.Broken:
	default:
		t.Error("the monitor is not marked broken")
	}
	if err := mon.Run(bounded(t, 100*time.Millisecond), "query-status", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("a second overrun: %v", err)
	}
}

func TestCapabilitiesRefused(t *testing.T) {
	f := newFakeQEMU(t, qemu)
	f.capabilities = `{"error": {"class": "CommandNotFound", "desc": "no capabilities here"}}`
	f.start(t)
	_, err := Dial(bounded(t, 10*time.Second), f.path)
	if err == nil || err.Error() != "qmp: no capabilities here" {
		t.Errorf("Dial refused capabilities: %v", err)
	}
}

// A QEMU that never greets is given up on when ctx ends.
func TestNoGreeting(t *testing.T) {
	f := newFakeQEMU(t, qemu)
	f.greet = false
	f.start(t)
	_, err := Dial(bounded(t, 300*time.Millisecond), f.path)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "qmp: capability negotiation: context deadline exceeded" {
		t.Errorf("Dial without a greeting: %v", err)
	}
}

// A socket that never appears, and one that keeps refusing, end with ctx.
func TestDialGivesUp(t *testing.T) {
	dir := t.TempDir()
	_, err := Dial(bounded(t, 200*time.Millisecond), filepath.Join(dir, "none.sock"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial of a socket never made: %v", err)
	}
	// Bound, never listening: every dial is refused.
	path := filepath.Join(dir, "bound.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Dial(bounded(t, 300*time.Millisecond), path)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial of a socket that refuses: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("Dial gave up after %s, before its context ended", d)
	}
}
