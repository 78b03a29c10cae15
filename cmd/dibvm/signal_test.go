package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startLongCommand starts dibvm running a command that prints "started"
// and then sleeps, and returns once the guest printed it.
func startLongCommand(t *testing.T, env []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(dibvmBin, "run", "--", "sh", "-c", "trap 'echo got TERM; exit 143' TERM; echo started; sleep 600 & wait")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "started" {
			t.Fatalf("first line %q, want started", l)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the guest command never started\n%s", stderr.String())
	}
	go func() {
		for range lines {
		}
	}()
	return cmd, &stderr
}

func TestSIGTERMStopsEverything(t *testing.T) {
	needVM(t)
	dir, env := runDir(t)
	cmd, stderr := startLongCommand(t, env)
	if len(qemuPids(dir)) == 0 {
		t.Fatal("no QEMU process found while the command runs")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("dibvm ended with %v, want exit status 143 (the command's own, after TERM)\n%s", err, stderr)
	}
	waitNoQEMU(t, dir, 2*time.Second)
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("left behind in the runtime dir: %v", left)
	}
}

func TestSIGKILLLeavesNoQEMUAndNextRunSweeps(t *testing.T) {
	needVM(t)
	dir, env := runDir(t)
	cmd, _ := startLongCommand(t, env)
	cmd.Process.Kill()
	cmd.Wait()
	waitNoQEMU(t, dir, 5*time.Second)
	if left := entries(t, dir); len(left) != 1 {
		t.Fatalf("expected the killed run's directory to remain until the next start, found %v", left)
	}
	r := dibvm(t, env, 5*time.Minute, "run", "--", "true")
	if r.code != 0 {
		t.Fatalf("next run failed: %s", r.stderr)
	}
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("after the next run, still left behind: %v", left)
	}
}
