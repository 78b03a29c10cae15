package qemu

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWatchdogKillsGroupWhenPipeCloses runs the watchdog's main in a child
// (this test binary, re-run) and checks that closing the pipe, as the
// kernel does when dibvm dies, kills the watched process group.
func TestWatchdogKillsGroupWhenPipeCloses(t *testing.T) {
	if pg := os.Getenv("DIBVM_TEST_WATCHDOG"); pg != "" {
		os.Exit(RunWatchdog(pg))
	}
	victim := exec.Command("sleep", "60")
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	exited := make(chan struct{})
	go func() { victim.Wait(); close(exited) }()

	r, w, _ := os.Pipe()
	wd := exec.Command(os.Args[0], "-test.run=TestWatchdogKillsGroupWhenPipeCloses")
	wd.Env = append(os.Environ(), "DIBVM_TEST_WATCHDOG="+strconv.Itoa(victim.Process.Pid))
	wd.Stdin = r
	if err := wd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	select {
	case <-exited:
		t.Fatal("the watchdog killed the group while its pipe was open")
	case <-time.After(1500 * time.Millisecond):
	}
	w.Close()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the watched group still runs after the pipe closed")
	}
	if err := wd.Wait(); err != nil {
		t.Errorf("watchdog: %v", err)
	}
}
