// Package qmp talks to QEMU's monitor through go-qemu, guarding against
// that library's traps: its event channel must be drained or every later
// command deadlocks, Run has no timeout, and a reply over 64 KiB breaks
// the monitor for good (so nothing here asks for large replies).
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Monitor is a connected QMP monitor.
type Monitor struct {
	mon    qmp.Monitor
	cancel context.CancelFunc
	// Broken is closed when a command overran its deadline; the monitor
	// must not be used again and the caller should kill QEMU.
	Broken chan struct{}
}

// Dial connects to the QMP socket at path, waiting for QEMU to create it.
func Dial(ctx context.Context, path string) (*Monitor, error) {
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp: %s did not appear: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for {
		mon, err := qmp.NewSocketMonitor("unix", path, 5*time.Second)
		if err == nil {
			return Attach(ctx, mon)
		}
		// QEMU binds the socket, which makes the file, before it
		// listens: a connection in between is refused. On a busy host
		// that moment lasts.
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("qmp: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Attach connects mon, a monitor reached some other way than a socket
// (through libvirt, say).
func Attach(ctx context.Context, mon qmp.Monitor) (*Monitor, error) {
	connected := make(chan error, 1)
	go func() { connected <- mon.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			return nil, fmt.Errorf("qmp: %w", err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("qmp: capability negotiation: %w", ctx.Err())
	}
	evctx, cancel := context.WithCancel(context.Background())
	events, err := mon.Events(evctx)
	if err != nil {
		cancel()
		mon.Disconnect()
		return nil, fmt.Errorf("qmp: %w", err)
	}
	go func() {
		for range events { // drained, or later commands deadlock
		}
	}()
	return &Monitor{mon: mon, cancel: cancel, Broken: make(chan struct{})}, nil
}

// ErrTimeout means QEMU did not answer a command in time.
var ErrTimeout = errors.New("qmp: QEMU did not answer in time")

// Run executes command with args (nil for none) and decodes the reply's
// "return" member into result (nil to ignore it). It waits at most until
// ctx ends; after a timeout the monitor is marked broken.
func (m *Monitor) Run(ctx context.Context, command string, args, result any) error {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	type reply struct {
		raw []byte
		err error
	}
	done := make(chan reply, 1)
	go func() {
		raw, err := m.mon.Run(b)
		done <- reply{raw, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return fmt.Errorf("qmp %s: %w", command, r.err)
		}
		if result == nil {
			return nil
		}
		var env struct {
			Return json.RawMessage `json:"return"`
		}
		if err := json.Unmarshal(r.raw, &env); err != nil {
			return fmt.Errorf("qmp %s: %w", command, err)
		}
		return json.Unmarshal(env.Return, result)
	case <-ctx.Done():
		select {
		case <-m.Broken:
		default:
			close(m.Broken)
		}
		return fmt.Errorf("%w: %s", ErrTimeout, command)
	}
}

// Status is the VM's run state, e.g. "running", "paused",
// "internal-error", "guest-panicked", "shutdown".
func (m *Monitor) Status(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	if err := m.Run(ctx, "query-status", nil, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

// Quit asks QEMU to exit at once.
func (m *Monitor) Quit(ctx context.Context) error { return m.Run(ctx, "quit", nil, nil) }

// Close disconnects.
func (m *Monitor) Close() {
	m.cancel()
	m.mon.Disconnect()
}
