//go:build e2e

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EReproducibleDebian builds `vm debian-minimal` with the same
// SOURCE_DATE_EPOCH twice: as an ordinary user with its own cache, from
// nothing, and as root, with another cache, replaying the first build's
// lock file (--packages-from) and resumed from the checkpoints the first
// build kept, which hold only files the lock names. The raw and qcow2
// images and the tars are the same bytes, as are the lock files, though
// the second downloaded only what it installed after the checkpoint, and
// read the suites of those from indexes its cache did not hold; and the
// image boots to a login prompt under SeaBIOS.
func TestE2EReproducibleDebian(t *testing.T) {
	needVM(t)
	const epoch = "1700000000"
	h := newHostileRun(t)
	store := filepath.Join(h.root, "checkpoints")
	os.Mkdir(store, 0o755)
	mine := filepath.Join(h.out, "user")
	os.Mkdir(mine, 0o755)
	if h.cred != nil {
		os.Chown(store, int(h.cred.Uid), int(h.cred.Gid))
		os.Chown(mine, int(h.cred.Uid), int(h.cred.Gid))
	}
	args := []string{"create", "--progress", "plain", "-t", "raw,qcow2,tar", "vm", "debian-minimal"}
	start := time.Now()
	r := h.run(t, nil, []string{"SOURCE_DATE_EPOCH=" + epoch, "DIBVM_CHECKPOINTS_DIR=" + store}, 60*time.Minute,
		append(args, "-o", filepath.Join(mine, "img"))...)
	if r.code != 0 {
		t.Fatalf("as an ordinary user: exit %d\n%s\n%s", r.code, tail(r.stdout, 40), r.stderr)
	}
	t.Logf("from nothing, as an ordinary user: %s", time.Since(start).Round(time.Second))
	if !strings.Contains(r.stdout, "Making the ext4 filesystem at / again from its files") {
		t.Errorf("the root filesystem was not made again:\n%s", tail(r.stdout, 30))
	}

	start = time.Now()
	roots := filepath.Join(t.TempDir(), "img")
	// root's own environment, less the test's: what reaches the hooks
	// is in the checkpoints' keys.
	cmd := exec.Command(dibvmBin, append(args, "-o", roots, "--packages-from", filepath.Join(mine, "img.lock"))...)
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH"), "SOURCE_DATE_EPOCH=" + epoch, "DIBVM_CHECKPOINTS_DIR=" + store}
	out, err := cmd.CombinedOutput()
	r = result{stdout: string(out)}
	if err != nil {
		r.code = 1
	}
	if r.code != 0 {
		t.Fatalf("as root, resumed: exit %d\n%s\n%s", r.code, tail(r.stdout, 40), r.stderr)
	}
	t.Logf("as root, resumed: %s", time.Since(start).Round(time.Second))
	if !strings.Contains(r.stdout, "dibvm: resuming after post-install.d") {
		// Its packages would be fetched again: if Debian's mirror moved
		// on in between, they are others, and the images differ.
		t.Fatalf("root's build did not resume from the user's checkpoint after post-install.d:\n%s", grepLines(r.stdout, "checkpoint"))
	}
	// root's lock file names every package with its download: those
	// before the checkpoint from it, the others from its own.
	checkLockFile(t, roots+".qcow2")
	for _, ext := range []string{"raw", "qcow2", "tar", "lock"} {
		a, b := fileDigest(t, filepath.Join(mine, "img."+ext)), fileDigest(t, roots+"."+ext)
		t.Logf("%s: %s, %s", ext, a, b)
		if a != b {
			t.Errorf("the %s files differ", ext)
		}
	}

	// It boots.
	disk := biggerOverlay(t, roots+".qcow2", 0)
	cmd = exec.Command(tool(t, "qemu-system-x86_64", "qemu-system-x86"), "-accel", "tcg,thread=single", "-m", "1024", "-nodefaults", "-display", "none",
		"-chardev", "stdio,id=s0,signal=off", "-serial", "chardev:s0", "-drive", "file="+disk+",if=virtio,format=qcow2", "-nic", "none")
	console := &consoleLog{}
	cmd.Stdout, cmd.Stderr = console, console
	stdin, err := cmd.StdinPipe() // open while it runs: the serial console's input
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	start = time.Now()
	console.expect(t, "login: ", 10*time.Minute)
	t.Logf("a login prompt after %s", time.Since(start).Round(time.Second))
}

// grepLines are the lines of s that hold word.
func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
