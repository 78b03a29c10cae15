package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// break= stops the build and opens a shell; with stdin not a terminal, the
// shell reads its commands from dibvm's stdin.
func TestBreakAfterInstallShellInChroot(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	cmd := exec.Command(dibvmBin, "create", "-n", "-t", "tar", "-o", out, "user-element")
	cmd.Env = append(os.Environ(), "ELEMENTS_PATH="+testElements(t), "DIB_USER_SETTING=x", "break=after-install")
	cmd.Stdin = strings.NewReader("echo from-break-shell > /etc/break-shell\necho \"shell in $(cat /etc/hostname) for $IMAGE_NAME\"\nexit\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"At stage after-install", "shell in tiny for /build/out/img", "Resuming"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if got := readTar(t, out+".tar")["etc/break-shell"]; got != "from-break-shell\n" {
		t.Errorf("what the shell wrote in the chroot: %q", got)
	}
}

func TestBreakAfterErrorSeesTheFailedPhase(t *testing.T) {
	needVM(t)
	outDir := t.TempDir()
	cmd := exec.Command(dibvmBin, "create", "-n", "-t", "tar", "-o", filepath.Join(outDir, "img"), "failing-element")
	cmd.Env = append(os.Environ(), "ELEMENTS_PATH="+testElements(t), "break=after-error")
	cmd.Stdin = strings.NewReader("echo \"error shell sees $(ls /tmp/in_target.d/install.d)\"\nexit\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("the failing build succeeded")
	}
	if !strings.Contains(stdout.String(), "error shell sees 50-fail") {
		t.Errorf("the after-error shell did not run in the chroot with the hooks:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "script:  50-fail") {
		t.Errorf("no error block after the shell:\n%s", stderr.String())
	}
	if left := entries(t, outDir); len(left) > 0 {
		t.Errorf("left in the output directory: %v", left)
	}
}

// On a terminal, the shell gets a terminal in the guest: driven here
// through tmux, as a person would type.
func TestBreakShellOnATerminal(t *testing.T) {
	needVM(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatalf("this test drives a terminal with tmux, which is not installed (scripts/install-deps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	out, done := filepath.Join(dir, "img"), filepath.Join(dir, "exit-status")
	session := "dibvm-break-" + filepath.Base(dir)
	script := "env ELEMENTS_PATH=" + testElements(t) + " DIB_USER_SETTING=x break=before-finalise " +
		dibvmBin + " create -n -t tar -o " + out + " user-element; echo $? > " + done
	if o, err := exec.Command(tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, o)
	}
	defer exec.Command(tmux, "kill-session", "-t", session).Run()
	screen := func() string {
		o, _ := exec.Command(tmux, "capture-pane", "-p", "-S", "-200", "-t", session).Output()
		return string(o)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; screen:\n%s", what, screen())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the breakpoint's shell", func() bool { return strings.Contains(screen(), "a shell is open") })
	send := func(keys ...string) {
		exec.Command(tmux, append([]string{"send-keys", "-t", session}, keys...)...).Run()
	}
	send("tty > /etc/tty-of-shell; echo typed-at-the-terminal > /etc/tty-shell", "Enter")
	waitFor("the command to run", func() bool { return strings.Count(screen(), "typed-at-the-terminal") >= 1 })
	time.Sleep(time.Second)
	send("exit", "Enter")
	waitFor("dibvm to finish", func() bool { _, err := os.Stat(done); return err == nil })
	status, _ := os.ReadFile(done)
	if strings.TrimSpace(string(status)) != "0" {
		t.Fatalf("dibvm exited %s; screen:\n%s", status, screen())
	}
	files := readTar(t, out+".tar")
	if files["etc/tty-shell"] != "typed-at-the-terminal\n" {
		t.Errorf("etc/tty-shell = %q", files["etc/tty-shell"])
	}
	if tty := files["etc/tty-of-shell"]; !strings.HasPrefix(tty, "/dev/pts/") {
		t.Errorf("the shell's stdin was %q, want a terminal (/dev/pts/N)", tty)
	}
}
