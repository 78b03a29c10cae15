// Package reaper reaps every child of PID 1 and hands exit statuses to
// whoever waits for a particular process.
//
// As init, the agent inherits every orphan in the guest; they must be
// reaped or they stay zombies. A single wait4(-1) loop does that, so the
// agent's own commands are waited for through Wait rather than through
// os/exec, which would race with the loop for the same statuses.
package reaper

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var (
	mu      sync.Mutex
	waiters = map[int]chan unix.WaitStatus{}
	exited  = map[int]unix.WaitStatus{} // reaped before anyone asked
	once    sync.Once
)

// Start begins reaping. It is safe to call more than once.
func Start() {
	once.Do(func() {
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				reapAll()
			}
		}()
		reapAll()
	})
}

func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		mu.Lock()
		if c, ok := waiters[pid]; ok {
			delete(waiters, pid)
			c <- ws
		} else {
			exited[pid] = ws
		}
		mu.Unlock()
	}
}

// Wait returns a channel that receives pid's exit status once.
func Wait(pid int) <-chan unix.WaitStatus {
	c := make(chan unix.WaitStatus, 1)
	mu.Lock()
	defer mu.Unlock()
	if ws, ok := exited[pid]; ok {
		delete(exited, pid)
		c <- ws
		return c
	}
	waiters[pid] = c
	return c
}

// CombinedOutput runs cmd and returns its stdout and stderr together, like
// exec.Cmd.CombinedOutput, but waits through the reaper. Once Start has
// been called, exec.Cmd's own Wait would race with the reaper for the
// exit status and lose it (ECHILD), so every command goes through here or
// through Wait.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	var out bytes.Buffer
	io.Copy(&out, r)
	r.Close()
	ws := <-Wait(cmd.Process.Pid)
	cmd.Process.Release()
	switch {
	case ws.Signaled():
		return out.Bytes(), fmt.Errorf("%s: killed by %v", cmd.Path, ws.Signal())
	case ws.ExitStatus() != 0:
		return out.Bytes(), fmt.Errorf("%s: exit status %d", cmd.Path, ws.ExitStatus())
	}
	return out.Bytes(), nil
}
