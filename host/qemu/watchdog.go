package qemu

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// WatchdogArg, as dibvm's first argument, runs the QEMU watchdog instead
// of the command line.
const WatchdogArg = "__dibvm-qemu-watchdog"

// Where the kernel has no parent-death signal (macOS), dibvm starts a
// watchdog: itself, re-run with WatchdogArg and QEMU's pid, reading a pipe
// whose write end only dibvm holds. When dibvm dies, however it dies, the
// pipe closes and the watchdog kills QEMU's process group.

// startWatchdog starts the watchdog for the process group pgid and returns
// the pipe's write end, which the caller keeps open for its whole life.
func startWatchdog(pgid int) (*os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, WatchdogArg, strconv.Itoa(pgid))
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start the QEMU watchdog: %w", err)
	}
	go cmd.Wait()
	return w, nil
}

// RunWatchdog is the watchdog's main: it waits until stdin closes and then
// kills process group pgid, or exits when that group is gone.
func RunWatchdog(pgid string) int {
	pid, err := strconv.Atoi(pgid)
	if err != nil || pid <= 1 {
		fmt.Fprintln(os.Stderr, "dibvm: the QEMU watchdog needs a process group ID")
		return 2
	}
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	for {
		select {
		case <-closed:
			syscall.Kill(-pid, syscall.SIGKILL)
			return 0
		case <-time.After(time.Second):
			if syscall.Kill(-pid, 0) != nil {
				return 0 // QEMU is gone on its own
			}
		}
	}
}
