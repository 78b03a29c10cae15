// Package qemu runs a vm.Machine as QEMU, dibvm's own child: it finds
// the emulator and firmware, turns the description into QEMU's
// arguments, and makes sure the process never outlives dibvm.
package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BinaryName is the name of the system emulator for goarch.
func BinaryName(goarch string) (string, error) {
	switch goarch {
	case "amd64":
		return "qemu-system-x86_64", nil
	case "arm64":
		return "qemu-system-aarch64", nil
	}
	return "", fmt.Errorf("no QEMU system emulator known for %s", goarch)
}

// Host is what the user told dibvm of this host's QEMU: where its
// emulators and its KVM device are, when not where they usually are.
// host/cli reads it from the environment.
type Host struct {
	// Emulators are system emulators by guest architecture (GOARCH),
	// in place of the one found in PATH: $DIBVM_QEMU_<ARCH>, and
	// $DIBVM_QEMU for the host's own.
	Emulators map[string]string
	// KVMDevice is the KVM device node; empty is /dev/kvm
	// ($DIBVM_KVM_DEVICE).
	KVMDevice string
}

// FindBinary returns the path of the system emulator for guests of
// goarch, or an error that says how to install it. h.Emulators override
// the search.
func (h Host) FindBinary(goarch string) (string, error) {
	if p := h.Emulators[goarch]; p != "" {
		return p, nil
	}
	name, err := BinaryName(goarch)
	if err != nil {
		return "", err
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if runtime.GOOS == "darwin" {
		// Homebrew's prefix is not in every PATH (a GUI session, a CI step).
		for _, dir := range homebrewBins {
			if p := filepath.Join(dir, name); isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found in PATH: dibvm needs QEMU's %s emulator for a %s helper VM. Install it: %s", name, goarch, goarch, InstallHint(goarch))
}

// homebrewBins are where Homebrew installs QEMU on Apple silicon and on
// Intel Macs.
var homebrewBins = []string{"/opt/homebrew/bin", "/usr/local/bin"}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// InstallHint says how to install QEMU's emulator for goarch guests.
func InstallHint(goarch string) string {
	if runtime.GOOS == "darwin" {
		return "brew install qemu"
	}
	deb, rpm := "qemu-system-x86", "qemu-system-x86"
	if goarch == "arm64" {
		deb, rpm = "qemu-system-arm", "qemu-system-aarch64"
	}
	return "apt-get install --no-install-recommends " + deb + " qemu-utils (Debian, Ubuntu); dnf install " + rpm + " qemu-img (Fedora)"
}

// ConsoleDevice is the kernel's name for the first serial port of a
// goarch guest.
func ConsoleDevice(goarch string) string {
	if goarch == "arm64" {
		return "ttyAMA0" // the virt machine's PL011
	}
	return "ttyS0"
}

// Machine is QEMU's machine type for a goarch guest. arm64 has no PC:
// virt is the machine made for guests like this one, with PCIe for the
// virtio devices and a PL011 for the console, and it boots a kernel
// directly without firmware.
func Machine(goarch string) string {
	if goarch == "arm64" {
		return "virt"
	}
	return "pc"
}

// CPU is the guest CPU: the host's own under a hypervisor; under TCG,
// unless model names another, one that boots and builds fastest:
//
// An x86 guest gets Nehalem, the x86-64-v2 level (SSE4.2, POPCNT) that
// RHEL 9 and its rebuilds require, without AVX or XSAVE: with max the
// helper booted 0.6 s slower (4.8 s against 4.2 s) and fork-and-exec was
// 4% slower (docs/benchmarks.md). Images whose binaries need x86-64-v3
// (RHEL 10) need --cpu-model max.
//
// Every x86 model gets RDRAND, which TCG emulates: Linux then seeds its
// random number generator from the CPU before it starts the second CPU.
// Without it the generator became ready 3 s into the boot, when
// virtio-rng fed it, and switching get_random_u32's static branch then
// rewrote code another CPU was running; multi-threaded TCG now and then
// ran the stale translation and the kernel panicked ("Fatal exception in
// interrupt" at get_random_u32).
//
// An arm64 one gets max (RNDR is its RDRAND): it signs and checks return addresses (pointer
// authentication) throughout Debian's kernel and userland; the
// architected algorithm, QARMA, costs TCG dearly, and the
// implementation-defined one QEMU offers does the same job far faster.
func CPU(goarch, accel, model string) string {
	switch {
	case accel != "tcg":
		return "host"
	case model != "" && model != "auto":
		if goarch == "arm64" && model == "max" {
			return "max,pauth-impdef=on"
		}
		if goarch == "amd64" && model != "max" {
			return model + ",+rdrand"
		}
		return model
	case goarch == "arm64":
		return "max,pauth-impdef=on"
	}
	return "Nehalem,+rdrand"
}

// CheckCPUModel says what is wrong with model as a -cpu model for a
// goarch guest under TCG: not one the emulator lists, or not a plain name
// (options are not taken, so that nothing else rides on the value).
func (h Host) CheckCPUModel(model, goarch string) error {
	if model == "auto" || model == "max" {
		return nil
	}
	if model == "" || strings.IndexFunc(model, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r))
	}) >= 0 {
		return fmt.Errorf("give auto, max or a CPU model name")
	}
	binary, err := h.FindBinary(goarch)
	if err != nil {
		return nil // the boot says what is missing
	}
	out, err := exec.Command(binary, "-cpu", "help").Output()
	if err != nil {
		return fmt.Errorf("%s -cpu help: %v", binary, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "x86" {
			f = f[1:]
		}
		if len(f) > 0 && f[0] == model {
			return nil
		}
	}
	return fmt.Errorf("%s does not know this CPU model; `%s -cpu help` lists those it does", filepath.Base(binary), filepath.Base(binary))
}

// Process is a running QEMU.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	out  strings.Builder // QEMU's own stderr, for error messages
	// watchdog is the pipe that keeps the watchdog waiting, where there is
	// one: it must stay open as long as dibvm lives.
	watchdog *os.File
}

// StartArgs launches binary with args. The process is tied to dibvm's
// life (see setParentDeath) and placed in its own process group, so a
// terminal's Ctrl-C reaches dibvm, which then stops the VM in order.
func StartArgs(binary string, args []string) (*Process, error) {
	return start(binary, args, false)
}

// StartInteractive launches binary with args on dibvm's own stdin,
// stdout and stderr, for a VM whose console is the terminal (-chardev
// stdio), tied to dibvm's life as StartArgs ties it. QEMU stays in
// dibvm's process group, the terminal's foreground: in a group of its
// own it would be stopped as soon as it read the terminal.
func StartInteractive(binary string, args []string) (*Process, error) {
	return start(binary, args, true)
}

func start(binary string, args []string, interactive bool) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout = &lockedWriter{p}
	p.cmd.Stderr = &lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if interactive {
		p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		p.cmd.SysProcAttr.Setpgid = false
	}
	setParentDeath(p.cmd.SysProcAttr)
	started := make(chan error, 1)
	go func() {
		// The parent-death signal follows the thread that forked QEMU, so
		// keep that thread alive until QEMU exits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	w, err := tieToParent(p)
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.watchdog = w
	return p, nil
}

// Pid is QEMU's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError describes how QEMU ended, with what it printed.
func (p *Process) ExitError() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	p.mu.Lock()
	out := strings.TrimSpace(p.out.String())
	p.mu.Unlock()
	if p.err == nil && out == "" {
		return nil
	}
	msg := "qemu exited"
	if p.err != nil {
		msg += ": " + p.err.Error()
	}
	if out != "" {
		msg += ": " + out
	}
	return errors.New(msg)
}

// MaxRSS is QEMU's peak resident set size in bytes, once it has exited.
func (p *Process) MaxRSS() int64 {
	select {
	case <-p.done:
	default:
		return 0
	}
	if p.cmd.ProcessState == nil {
		return 0
	}
	return maxRSS(p.cmd.ProcessState)
}

// Stop asks QEMU to quit (SIGTERM: it flushes its disks and exits),
// waits up to stopGrace, and then kills it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.Kill()
	}
}

// Kill stops QEMU at once and waits for it to be gone.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// stopGrace is how long Stop lets QEMU flush its disks.
const stopGrace = 10 * time.Second

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.out.Len() < 64<<10 {
		w.p.out.Write(b)
	}
	return len(b), nil
}
