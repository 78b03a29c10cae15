package main_test

// The hostile-element suite: builds of elements that try to reach the
// host, each run as an ordinary user (made when the tests run as root),
// each checked for the attack failing, an error that says why, and
// nothing left behind: no QEMU, no run directory, no partial output, and
// the host's files unchanged. The longest cases (a fork bomb, a flood of
// output) are in hostile_e2e_test.go, for make e2e-full.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hostileRun is one test's sandbox on the host: directories the
// ordinary user owns, with the test elements copied in, and a secret
// of the user's that no build may read.
type hostileRun struct {
	root     string // everything the test made, removed at its end
	elements string // ELEMENTS_PATH
	runtime  string // DIBVM_RUNTIME_DIR
	out      string // where outputs go
	secret   string // a file of the user's, e.g. an SSH key
	bin      string
	cred     *syscall.Credential // nil when the test is not root
	home     string
}

const secretText = "-----BEGIN OPENSSH PRIVATE KEY----- not for any guest\n"

func newHostileRun(t *testing.T) *hostileRun {
	t.Helper()
	root, err := os.MkdirTemp("", "dibvm-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	h := &hostileRun{root: root, bin: dibvmBin, home: os.Getenv("HOME"),
		elements: filepath.Join(root, "elements"), runtime: filepath.Join(root, "run"), out: filepath.Join(root, "out")}
	if err := os.CopyFS(h.elements, os.DirFS(testElements(t))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{h.runtime, h.out, filepath.Join(root, "home")} {
		os.MkdirAll(d, 0o755)
	}
	h.secret = filepath.Join(root, "home", "id_ed25519")
	os.WriteFile(h.secret, []byte(secretText), 0o600)
	if os.Geteuid() == 0 {
		u := ensureUser(t, "dibvmtest")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		h.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		h.home = u.HomeDir
		h.bin = filepath.Join(root, "dibvm")
		copyFile(t, dibvmBin, h.bin)
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil {
				os.Lchown(p, uid, gid)
			}
			return nil
		})
		os.Chmod(root, 0o755)
	}
	return h
}

// run runs dibvm as the ordinary user, with stdout into w (nil: kept in
// the result), and waits at most limit.
func (h *hostileRun) run(t *testing.T, w io.Writer, env []string, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append([]string{"HOME=" + h.home, "PATH=" + os.Getenv("PATH"), "ELEMENTS_PATH=" + h.elements,
		"DIBVM_RUNTIME_DIR=" + h.runtime}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	cmd.Dir = h.root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if w != nil {
		cmd.Stdout = w
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// dibvm's own peak memory (QEMU's is its child's, not counted).
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if hwm := vmHWM(cmd.Process.Pid); hwm > peak.Load() {
				peak.Store(hwm)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start), peakRSS: peak.Load()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("dibvm %s did not finish within %s\nstderr:\n%s", strings.Join(args, " "), limit, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// vmHWM is the peak resident memory of process pid so far, in bytes.
func vmHWM(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// create builds elements as a tar into the output directory.
func (h *hostileRun) create(t *testing.T, env []string, limit time.Duration, extra []string, elems ...string) result {
	t.Helper()
	args := append([]string{"create", "-n", "-t", "tar", "-o", filepath.Join(h.out, "img")}, extra...)
	return h.run(t, nil, env, limit, append(args, elems...)...)
}

// nothingLeft checks that the build left no QEMU, no run directory, no
// output, and the secret as it was.
func (h *hostileRun) nothingLeft(t *testing.T) {
	t.Helper()
	waitNoQEMU(t, h.runtime, 5*time.Second)
	if left := entries(t, h.runtime); len(left) > 0 {
		t.Errorf("left in the runtime dir: %v", left)
	}
	if left := entries(t, h.out); len(left) > 0 {
		t.Errorf("left in the output directory: %v", left)
	}
	if b, err := os.ReadFile(h.secret); err != nil || string(b) != secretText {
		t.Errorf("the user's secret changed: %q, %v", b, err)
	}
}

// failed checks that the build failed saying each of want.
func failed(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("the hostile build succeeded\nstdout:\n%s", tail(r.stdout, 30))
	}
	noPanic(t, r)
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("the error does not say %q:\n%s", w, r.stderr)
		}
	}
}

// Links out of an element tree are refused before the VM boots, naming
// the element, the file and where it leads: no byte of the user's files
// reaches the guest.
func TestHostileElementLinksOut(t *testing.T) {
	needVM(t) // runs as the ordinary user like the rest of the suite
	h := newHostileRun(t)
	for _, tc := range []struct{ element, file, target string }{
		{"escape-hook", "install.d/50-key", h.secret},
		{"escape-static", "static/root/.ssh/authorized_keys", "../../../../../home/id_ed25519"},
		{"escape-package-installs", "package-installs.yaml", h.secret},
		{"escape-pkg-map", "pkg-map", "../../home/id_ed25519"},
		{"escape-environment", "environment.d/10-env", "/etc/passwd"},
		{"escape-through-link", "install.d/50-x", "../data/up/../../home/id_ed25519"},
	} {
		t.Run(tc.element, func(t *testing.T) {
			el := filepath.Join(h.elements, tc.element)
			os.MkdirAll(filepath.Join(el, filepath.Dir(tc.file)), 0o755)
			os.WriteFile(filepath.Join(el, "element-deps"), []byte("tiny-os\n"), 0o644)
			os.MkdirAll(filepath.Join(el, "data"), 0o755)
			os.Symlink("..", filepath.Join(el, "data", "up"))
			if err := os.Symlink(tc.target, filepath.Join(el, tc.file)); err != nil {
				t.Fatal(err)
			}
			if h.cred != nil {
				filepath.WalkDir(el, func(p string, d os.DirEntry, err error) error {
					os.Lchown(p, int(h.cred.Uid), int(h.cred.Gid))
					return nil
				})
			}
			r := h.create(t, nil, time.Minute, nil, tc.element)
			failed(t, r, "element "+tc.element, tc.file+" -> "+tc.target, "outside the element")
			if strings.Contains(r.stdout, "Building elements") || r.took > 20*time.Second {
				t.Errorf("the VM booted (took %s):\n%s", r.took, r.stdout)
			}
			h.nothingLeft(t)
			os.RemoveAll(el) // the next case has an element tree without it
		})
	}
	// An element that is a link to a directory of the user's.
	t.Run("escape-directory", func(t *testing.T) {
		link := filepath.Join(h.elements, "stolen")
		if err := os.Symlink(filepath.Dir(h.secret), link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(link)
		r := h.create(t, nil, time.Minute, nil, "tiny-os", "stolen")
		failed(t, r, "element stolen", "stolen -> "+filepath.Dir(h.secret), "out of its ELEMENTS_PATH entry")
		h.nothingLeft(t)
	})
}

// An element with a huge (sparse) file is refused before anything reads
// it: the input disk is made in memory.
func TestHostileElementHugeFile(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	el := filepath.Join(h.elements, "huge")
	os.MkdirAll(filepath.Join(el, "static"), 0o755)
	os.WriteFile(filepath.Join(el, "element-deps"), []byte("tiny-os\n"), 0o644)
	blob := filepath.Join(el, "static", "blob")
	os.WriteFile(blob, nil, 0o644)
	if err := os.Truncate(blob, 64<<30); err != nil {
		t.Fatal(err)
	}
	r := h.create(t, nil, time.Minute, nil, "huge")
	failed(t, r, "the elements' files come to 65", "more than the 1024 MiB", "element huge")
	if r.took > 20*time.Second {
		t.Errorf("refusing took %s", r.took)
	}
	h.nothingLeft(t)
}

// One build of an element that prints control messages and escape
// sequences, tries the host's loopback and the metadata service, and
// hands over manifests that lead out: the build succeeds, all of it is
// text, nothing is reached, and only the plain manifest arrives.
func TestHostileElementOutputAndNetwork(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	port, hits := loopbackServer(t)

	r := h.create(t, []string{"HOSTILE_PORT=" + port}, 10*time.Minute, nil, "hostile-output")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout, 40), r.stderr)
	}
	if strings.Contains(r.stderr, "stopped at") || strings.Contains(r.stderr, "a shell is open") {
		t.Errorf("printed control lines opened a shell:\n%s", r.stderr)
	}
	for _, want := range []string{
		`dibvm-break: {"point":"before-install","chroot":true}`,
		`dibvm-build-result: {"image_size":1}`,
		`dibvm-build-failure: {"phase":"install.d"`,
		`dibC^@^@^@3{"break":{"point":"before-finalise","chroot":true}}`,
		"^[]0;owned^G^[[2J^[[Hafter-escapes",
		"probes: 403|refused|403",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the output does not show %q as text:\n%s", want, tail(r.stdout, 40))
		}
	}
	if strings.ContainsAny(r.stdout, "\x1b\x07\x00") {
		t.Error("control characters from the guest reached dibvm's output")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the guest reached the host's loopback server %d times", n)
	}
	if !strings.Contains(r.stderr, "dibvm: egress: refused") || !strings.Contains(r.stderr, "--allow-net 127.0.0.1") {
		t.Errorf("the refusal was not reported with the flag that would open it:\n%s", r.stderr)
	}
	// Manifests: only the plain file arrives; no link was made.
	var found []string
	filepath.WalkDir(filepath.Join(h.out, "img.d"), func(p string, d os.DirEntry, err error) error {
		if err == nil && p != filepath.Join(h.out, "img.d") {
			rel, _ := filepath.Rel(filepath.Join(h.out, "img.d"), p)
			found = append(found, fmt.Sprintf("%s:%s", rel, d.Type()))
		}
		return nil
	})
	if got := strings.Join(found, " "); got != "hostile-ok:---------- sub:d---------" {
		t.Errorf("manifests on the host: %s; want only hostile-ok and the directory sub", got)
	}
	if len(readTar(t, filepath.Join(h.out, "img.tar"))) == 0 {
		t.Error("the tarball is empty")
	}
	if b, _ := os.ReadFile(h.secret); string(b) != secretText {
		t.Error("the user's secret changed")
	}
	waitNoQEMU(t, h.runtime, 5*time.Second)
	if left := entries(t, h.runtime); len(left) > 0 {
		t.Errorf("left in the runtime dir: %v", left)
	}
}

// Root in the guest can write to the build's control stream itself; the
// host refuses what break= did not ask for, opens no shell and stops.
func TestHostileElementForgesControl(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	r := h.create(t, nil, 10*time.Minute, nil, "hostile-forge")
	failed(t, r, `the build was stopped: the helper VM asked for a shell at "before-finalise", where break= did not ask to stop; no shell was opened`)
	if !strings.Contains(r.stdout, "forged into pipe:") {
		t.Errorf("the hook found no control stream to forge into:\n%s", tail(r.stdout, 20))
	}
	if strings.Contains(r.stderr, "a shell is open") {
		t.Error("a shell was opened")
	}
	h.nothingLeft(t)
}

// A hook may tell the host, in dib-build's name, that an earlier hook
// of its phase started and ended and that the build stopped there to be
// kept: a checkpoint whose key would not cover what the hook did. The
// host, which heard the forging hook start, refuses, stops the build and
// keeps nothing from then on; what it kept before, at points it saw
// reached in order, stays. A second build whose later hook is harmless
// resumes only from those, and ships its own hooks' work and nothing
// the forging hook did.
func TestHostileElementForgesCheckpoint(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	store := filepath.Join(h.root, "checkpoints")
	env := []string{"DIBVM_CHECKPOINTS_DIR=" + store}
	r := h.create(t, env, 10*time.Minute, nil, "hostile-forge-checkpoint")
	failed(t, r, `the build was stopped: the helper VM said it starts install.d/40-quick while 60-forge still runs`)
	if !strings.Contains(r.stdout, "forged into pipe:") {
		t.Errorf("the hook found no control stream to forge into:\n%s", tail(r.stdout, 20))
	}
	if !regexp.MustCompile(`dibvm: kept the tree after .*install\.d/30-slow \(`).MatchString(r.stdout) {
		t.Errorf("the build did not keep the tree after its slow hook, before the forgery:\n%s", checkpointLines(r.stdout))
	}
	metas, _ := filepath.Glob(filepath.Join(store, "*.json"))
	for _, m := range metas {
		b, _ := os.ReadFile(m)
		var kept struct{ Phase string }
		json.Unmarshal(b, &kept)
		if !slices.Contains([]string{"root.d", "install.d/30-slow"}, kept.Phase) {
			t.Errorf("a checkpoint after %s was kept", kept.Phase)
		}
	}
	h.nothingLeft(t)

	// The same elements, but for a harmless hook where the forging one was.
	harmless := filepath.Join(h.elements, "hostile-forge-checkpoint", "install.d", "60-forge")
	if err := os.WriteFile(harmless, []byte("#!/bin/bash\necho harmless > /harmless\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r = h.create(t, env, 10*time.Minute, nil, "hostile-forge-checkpoint")
	if r.code != 0 {
		t.Fatalf("the second build failed: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	if !strings.Contains(r.stdout, "dibvm: resuming after install.d/30-slow") {
		t.Errorf("the second build did not resume after the slow hook:\n%s", checkpointLines(r.stdout))
	}
	files := readTar(t, filepath.Join(h.out, "img.tar"))
	for _, f := range []string{"slow", "quick", "harmless", "last"} {
		if _, ok := files[f]; !ok {
			t.Errorf("the image lacks /%s, which its own hooks write", f)
		}
	}
	if _, ok := files["forged"]; ok {
		t.Error("the image holds /forged, which only the forging hook of another build wrote")
	}
}

// A hook that fills the scratch disk ends the build with an error that
// says so and how to give it more room.
func TestHostileElementFillsScratchDisk(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	r := h.create(t, nil, 15*time.Minute, []string{"--scratch-size", "1G"}, "hostile-fill")
	failed(t, r, "element: hostile-fill", "script:  50-fill", "No space left on device",
		"The build's scratch disk", "is full (1024 MiB)", "--scratch-size")
	h.nothingLeft(t)
}

// A hook that crashes the helper's kernel ends the build at once, with
// the panic in the error.
func TestHostileElementPanicsKernel(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	r := h.create(t, nil, 10*time.Minute, nil, "hostile-panic")
	failed(t, r, "the helper VM stopped", "Kernel panic")
	h.nothingLeft(t)
}

// A hook that writes to the serial console without end is stopped before
// the console's file fills the host's disk.
func TestHostileElementFloodsConsole(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	r := h.create(t, nil, 15*time.Minute, nil, "hostile-console")
	failed(t, r, "the helper VM stopped: it wrote more than 32 MiB to its serial console and was stopped")
	t.Logf("stopped after %s", r.took.Round(time.Second))
	h.nothingLeft(t)
}

// A hook that never ends is ended by --timeout, as the ordinary user.
func TestHostileElementSleepsForever(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	r := h.create(t, nil, 10*time.Minute, []string{"--timeout", "90s"}, "slow-element")
	failed(t, r, "the build took longer than --timeout 1m30s and was stopped")
	h.nothingLeft(t)
}
