package chroot

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestMountedBelow(t *testing.T) {
	info := []byte(`22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:25 / /build/target rw - ext4 /dev/vdb rw
31 30 0:26 / /build/target/proc rw - proc proc rw
32 30 0:5 / /build/target/dev rw - devtmpfs udev rw
33 32 0:27 / /build/target/dev/pts rw - devpts devpts rw
34 30 0:28 / /build/target/my\040dir rw - tmpfs tmpfs rw
35 31 0:26 / /build/target/proc rw - proc proc rw
36 22 0:29 / /build/target2/x rw - tmpfs tmpfs rw
`)
	got := mountedBelow(info, "/build/target")
	want := []string{"/build/target/dev/pts", "/build/target/proc", "/build/target/my dir", "/build/target/dev", "/build/target/proc"}
	if !slices.Equal(got, want) {
		t.Errorf("mountedBelow = %q, want %q", got, want)
	}
}

// TestKillIn starts a process whose working directory is in a tree
// and checks KillIn stops it and names it.
func TestKillIn(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "var")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.Dir = sub
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := KillIn(root)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the process in the tree still runs")
	}
	if len(killed) != 1 || killed[0] != "sleep("+strconv.Itoa(cmd.Process.Pid)+")" {
		t.Errorf("KillIn = %q", killed)
	}
	if again := KillIn(root); len(again) != 0 {
		t.Errorf("KillIn found %q after all were stopped", again)
	}
}
