package machine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/vm"
)

// requirement is one step of the boot that must happen in time, with what
// to tell the user when it does not.
type requirement struct {
	description string
	hint        string
	check       func(ctx context.Context) error
}

// waitReady walks the boot requirements, each bounded by what is left of
// the accelerator's boot timeout, and fails fast if QEMU exits.
func (m *Machine) waitReady(ctx context.Context, b vm.Backend, keys *agentclient.Keys, opts Options) error {
	timeout := opts.BootTimeout
	accel := m.Accel
	hypervisor := accel != "tcg"
	if hypervisor {
		timeout = opts.HypervisorTimeout
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// QEMU exiting ends every wait at once.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-m.proc.Done():
			stop()
		case <-ctx.Done():
		}
	}()

	for _, r := range m.requirements(b, keys) {
		err := r.check(ctx)
		if err == nil {
			continue
		}
		// A QEMU that died takes its sockets with it: give its exit a
		// moment to be seen, so the error names the cause, not a symptom.
		select {
		case <-m.proc.Done():
		case <-time.After(500 * time.Millisecond):
		}
		var out error
		switch {
		case m.exited():
			out = m.StoppedError()
		case ctx.Err() != nil:
			out = fmt.Errorf("%s did not happen within %s%s. %s%s",
				r.description, timeout, m.vmStatus(), r.hint, m.consoleReport())
		default:
			out = fmt.Errorf("%s: %w%s", r.description, err, m.consoleReport())
		}
		if hypervisor {
			return &notBootingError{what: "waiting for " + r.description, after: time.Since(start).Round(time.Second),
				err: fmt.Errorf("%s did not start the guest: %w", strings.ToUpper(accel), out)}
		}
		err = fmt.Errorf("the helper VM did not boot under %s: %w", strings.ToUpper(accel), out)
		if reason := m.stopReason(); m.exited() && retryableBootPanic(accel, reason) {
			return &bootPanicError{reason: reason, err: err}
		}
		return err
	}
	return nil
}

// retryableBootPanic says whether a guest that stopped during its boot
// for reason may simply be booted again (see bootPanicError): a kernel
// panic under TCG on a fault in its own code ("Fatal exception", the
// panic an oops becomes). A panic for a cause that would be there again
// (no root, no memory, the agent as PID 1 dying), any panic under a
// hypervisor, and the agent's own fatal error end the run.
func retryableBootPanic(accel, reason string) bool {
	return accel == "tcg" && strings.HasPrefix(reason, "Kernel panic") &&
		strings.Contains(reason, "Fatal exception")
}

func (m *Machine) exited() bool {
	select {
	case <-m.proc.Done():
		return true
	default:
		return false
	}
}

func (m *Machine) requirements(b vm.Backend, keys *agentclient.Keys) []requirement {
	return []requirement{
		{
			description: "QEMU monitor connected",
			hint:        "QEMU did not open its monitor; run it by hand with the same arguments to see why (through libvirt, its log in the daemon's qemu log directory says).",
			check: func(ctx context.Context) (err error) {
				m.mon, err = b.Monitor(ctx, m.proc, m.spec)
				return err
			},
		},
		{
			description: "the kernel printing to the serial console",
			hint:        "The guest CPU never ran kernel code. With a nested or broken hypervisor try --accel tcg.",
			check:       func(ctx context.Context) error { return waitForFile(ctx, m.dir.File("console.log")) },
		},
		{
			description: "the guest agent answering over SSH",
			hint:        "The kernel started but the agent did not come up; the console lines below say how far it got.",
			check: func(ctx context.Context) (err error) {
				m.Client, err = dialAgent(ctx, m.dir.File("agent.sock"), keys)
				return err
			},
		},
	}
}

// waitForFile waits until path exists and is not empty.
func waitForFile(ctx context.Context, path string) error {
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dialAgent connects to the agent, trying again while QEMU has not yet
// created the socket.
func dialAgent(ctx context.Context, sock string, keys *agentclient.Keys) (*agentclient.Client, error) {
	for {
		c, err := agentclient.Dial(ctx, sock, keys)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// vmStatus asks QEMU for the run state, for error messages.
func (m *Machine) vmStatus() string {
	if m.mon == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := m.mon.Status(ctx)
	if err != nil {
		return ""
	}
	return " (QEMU reports the VM " + st + ")"
}

// stopReason finds the line of the console that says why the guest died.
func (m *Machine) stopReason() string {
	if m.consoleFlood.Load() {
		return floodReason()
	}
	if err := m.proc.ExitError(); err != nil {
		if reason := panicLine(m.dir.File("console.log")); reason != "" {
			return reason
		}
		return err.Error()
	}
	if reason := panicLine(m.dir.File("console.log")); reason != "" {
		return reason
	}
	return "the guest powered off"
}

func panicLine(console string) string {
	for _, l := range vm.ConsoleLines(console, 1<<20) {
		if i := strings.Index(l, "Kernel panic"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
		if i := strings.Index(l, api.LogPrefix+api.Fatal); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return ""
}

// consoleReport is the end of the serial console (vm.ConsoleTail), for
// errors.
func (m *Machine) consoleReport() string {
	tail := vm.ConsoleTail(m.dir.File("console.log"), "    ")
	if tail == "    " {
		return "\n(the guest printed nothing on its console)"
	}
	return "\nlast lines of the guest console:\n" + tail
}
