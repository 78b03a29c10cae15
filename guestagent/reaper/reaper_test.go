package reaper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// zombies lists this process's children that are zombies.
func zombies() []string {
	var out []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == me {
			out = append(out, s)
		}
	}
	return out
}

func TestReaperCollectsOrphansAndStatuses(t *testing.T) {
	// Become what PID 1 is to the guest: the parent of every orphan below.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	Start()

	out, err := CombinedOutput(exec.Command("sh", "-c", "echo out; echo err >&2; exit 3"))
	if string(out) != "out\nerr\n" || err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("CombinedOutput = %q, %v; want out+err and exit status 3", out, err)
	}
	// Grandchildren orphaned by their parent land on us and must be reaped.
	if _, err := CombinedOutput(exec.Command("sh", "-c", "for i in 1 2 3; do (sleep 0.1 &); done")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		z := zombies()
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombies not reaped: %v", z)
		}
	}
}
