package rundir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSweepRemovesOnlyAbandonedDirs(t *testing.T) {
	base := t.TempDir()

	live, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()

	// A directory whose owner died: its lock file exists but nobody holds it.
	dead := filepath.Join(base, prefix+"dead")
	os.Mkdir(dead, 0o755)
	os.WriteFile(filepath.Join(dead, lockName), nil, 0o644)
	// Someone else's directory that merely shares the prefix.
	foreign := filepath.Join(base, prefix+"foreign")
	os.Mkdir(foreign, 0o755)

	if n := Sweep(base); n != 1 {
		t.Errorf("Sweep removed %d directories, want 1", n)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{live.Path, true}, {dead, false}, {foreign, true}} {
		_, err := os.Stat(c.path)
		if got := err == nil; got != c.want {
			t.Errorf("%s exists = %v, want %v", c.path, got, c.want)
		}
	}
}

// A lock held by another process keeps its directory, as it will be while
// that dibvm runs.
func TestSweepKeepsDirLockedByAnotherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatalf("this test needs flock(1) from util-linux: %v", err)
	}
	base := t.TempDir()
	d := filepath.Join(base, prefix+"other")
	os.Mkdir(d, 0o755)
	lock := filepath.Join(d, lockName)
	os.WriteFile(lock, nil, 0o644)
	holder := exec.Command("flock", lock, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	// Wait until the holder has the lock: a non-blocking flock fails.
	deadline := time.Now().Add(5 * time.Second)
	for exec.Command("flock", "-n", lock, "true").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("flock(1) never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := Sweep(base); n != 0 {
		t.Errorf("Sweep removed %d directories, want 0", n)
	}
	if _, err := os.Stat(d); err != nil {
		t.Errorf("locked directory was removed")
	}
}

// A run directory too deep for the VM's unix sockets is refused with the
// way out, instead of failing later at bind.
func TestNewRefusesTooLongAPath(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(long); err == nil || !strings.Contains(err.Error(), "set DIBVM_RUNTIME_DIR to a shorter directory") {
		t.Errorf("New in %s: %v", long, err)
	}
	if entries, _ := os.ReadDir(long); len(entries) != 0 {
		t.Errorf("left %d entries", len(entries))
	}
}

// A temporary directory too deep for the sockets, as macOS's per-user
// $TMPDIR nearly is and a CI runner's can be, is passed over for /tmp.
func TestNewAvoidsALongTMPDIR(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("t", 100))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", long)
	d, err := New("")
	if err != nil {
		t.Fatalf("New with TMPDIR=%s: %v", long, err)
	}
	defer d.Remove()
	if filepath.Dir(d.Path) != "/tmp" {
		t.Errorf("run directory %s, want one in /tmp", d.Path)
	}
	if n := len(d.File(longestSocket)); n > maxSocketPath {
		t.Errorf("socket path %s is %d bytes, more than %d", d.File(longestSocket), n, maxSocketPath)
	}
	fi, err := os.Stat(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("run directory %s has mode %v; want 0700", d.Path, fi.Mode().Perm())
	}
}
