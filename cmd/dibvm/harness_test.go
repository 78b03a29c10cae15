// The harness of dibvm's tests: the binary they run, how they run it, the
// test user, the run directories, and the helpers several test files share.
//
// These tests run the real dibvm binary (built by `make`). They fall into
// the tiers the Makefile runs:
//
//   - unit (`make unit`, go test -short): no VM and no network. Here that
//     is the binary's command line, element trees and checks against a
//     stub QEMU that only records that it was started; every test that
//     boots a VM skips itself through needVM, which asks testing.Short.
//   - VM (`make test`): the integration tests, which boot the real helper
//     appliance under QEMU and reach the Debian mirror. The appliance is
//     built from the mirror the first time and cached. Gate: needVM.
//   - libvirt (also in `make test`): the libvirt backend's tests, on a
//     session daemon the tests start for a test user. Gate: needVM, then
//     the tests' own checks for what they need on the host.
//   - e2e (go test -tags e2e: `make e2e`, which `make test` ends with,
//     and `make e2e-full`): the end-to-end builds of real images, booted
//     and logged into. Gate: the e2e build tag alone, on e2e_test.go and
//     the *_e2e_test.go files; they are not for -short.
//
// A helper used by both tagged and untagged files lives in an untagged one.

package main_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var dibvmBin string

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short
	bin, err := filepath.Abs("../../bin/dibvm")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil && !testing.Short() {
		fmt.Fprintf(os.Stderr, "the integration tests need bin/dibvm with its agent embedded: run `make` (or `make test`) first (%v)\n", err)
		os.Exit(1)
	}
	dibvmBin = bin
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
	peakRSS        int64 // dibvm's own, where a test measures it
}

// dibvm runs the binary with extra environment and waits at most limit.
func dibvm(t *testing.T, env []string, limit time.Duration, args ...string) result {
	t.Helper()
	r, err := runDibvm(env, limit, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runDibvm is dibvm without a *testing.T, for use from other goroutines.
func runDibvm(env []string, limit time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, dibvmBin, args...)
	cmd.Env = append(os.Environ(), env...)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "DIBVM_CHECKPOINTS_DIR=") }) {
		// A build resumes only in the tests about that, from their own
		// store: the others run every hook they mean to.
		cmd.Env = append(cmd.Env, "DIB_NO_CHECKPOINTS=1")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("dibvm %s did not finish within %s\nstderr:\n%s", strings.Join(args, " "), limit, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, err
	}
	return r, nil
}

// stamp is the time a build's plain output starts each line with, as
// DIB's does.
var stamp = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| `)

// unstamp is a build's plain output without the time on each line.
func unstamp(out string) string { return stamp.ReplaceAllString(out, "") }

func needVM(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots the helper VM; not in -short mode")
	}
}

// runDir gives a test its own directory for run directories, so that it
// can check what is left there.
func runDir(t *testing.T) (string, []string) {
	d := t.TempDir()
	return d, []string{"DIBVM_RUNTIME_DIR=" + d}
}

// qemuPids lists QEMU processes whose command line mentions dir.
func qemuPids(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("qemu-system")) && bytes.Contains(b, []byte(dir)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func waitNoQEMU(t *testing.T, dir string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(qemuPids(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU still running %s after dibvm ended: pids %v", limit, qemuPids(dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// loopbackServer starts an HTTP server on the host's loopback, a service
// no guest may reach unless the user opens it, and returns its port and
// how many requests it has had.
func loopbackServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits := &atomic.Int32{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "host secret")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), hits
}

func childQEMU(parent int) []int {
	var pids []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[bytes.LastIndexByte(b, ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(parent) && bytes.Contains(b, []byte("qemu-system")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			pids = append(pids, pid)
		}
	}
	return pids
}

func procUID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid, _ := strconv.Atoi(strings.Fields(v)[1]) // effective uid
			return uid
		}
	}
	return -1
}

func ensureUser(t *testing.T, name string) *user.User {
	t.Helper()
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// testElements is the directory of the test elements; tiny-os builds a
// root in seconds, so these tests exercise the build pipeline rather than
// a distribution.
func testElements(t *testing.T) string {
	p, err := filepath.Abs("testdata/elements")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readTar reads the tar at path: each entry's contents by name, less a
// leading "./".
func readTar(t *testing.T, path string) map[string]string {
	t.Helper()
	files, _ := readTarOwners(t, path)
	return files
}

// readTarOwners is readTar with each entry's owner, as "uid:gid".
func readTarOwners(t *testing.T, path string) (files, owners map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, owners = map[string]string{}, map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, owners
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(tr)
		name := strings.TrimPrefix(h.Name, "./")
		files[name] = string(b)
		owners[name] = fmt.Sprintf("%d:%d", h.Uid, h.Gid)
	}
}

// tool finds a host tool the image checks need, also in the sbin
// directories an ordinary user's PATH may lack.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("checking images needs %s (Debian package %s); scripts/install-deps.sh installs it", name, pkg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func debugfsCat(t *testing.T, fsImage, path string) string {
	t.Helper()
	out, err := exec.Command(tool(t, "debugfs", "e2fsprogs"), "-R", "cat "+path, fsImage).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

func noPanic(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", ".go:"} {
		if strings.Contains(r.stderr, s) {
			t.Errorf("stderr looks like a Go crash:\n%s", r.stderr)
		}
	}
}
