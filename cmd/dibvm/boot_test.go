package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dibvm boot refuses what cannot boot before QEMU starts, and leaves no
// temporary file behind.
func TestBootRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "qemu-started")
	fake := filepath.Join(dir, "qemu")
	os.WriteFile(fake, []byte("#!/bin/sh\ntouch "+started+"\nexit 1\n"), 0o755)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	env := []string{"DIBVM_QEMU=" + fake, "DIBVM_QEMU_ARM64=" + fake, "DIBVM_QEMU_AMD64=" + fake, "TMPDIR=" + tmp}
	img := filepath.Join(dir, "img.qcow2")
	overlay := filepath.Join(dir, "overlay.qcow2")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", img, "64M"},
		{"create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2", overlay},
	} {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"boot"}, "give the IMAGE to boot"},
		{[]string{"boot", filepath.Join(dir, "missing.qcow2")}, "IMAGE " + filepath.Join(dir, "missing.qcow2") + ": stat"},
		{[]string{"boot", dir}, "not a file"},
		{[]string{"boot", img, "uname"}, "give one IMAGE, then -- and the command"},
		{[]string{"boot", "--", "uname"}, "give one IMAGE, then -- and the command"},
		{[]string{"boot", "--network", "wifi", "--ssh", "70000", img}, "--network wifi: give proxy, nat, restricted, none\ndibvm: --ssh 70000"},
		{[]string{"boot", "--network", "nat", "--allow-net", "127.0.0.1", img}, "--allow-net: only --network proxy has an egress policy to open or restrict; --network nat has none"},
		{[]string{"boot", "--allow-only", "http://x/", img}, "--allow-only"},
		{[]string{"boot", "--backend", "libvirt", "--network", "proxy", img}, "--network proxy: libvirt runs QEMU in a sandbox"},
		{[]string{"boot", "--arch", "sparc", img}, "--arch sparc"},
		{[]string{"boot", "--firmware", "coreboot", img}, "--firmware coreboot"},
		{[]string{"boot", "--network", "none", "--ssh", "2222", img}, "--ssh needs a network"},
		{[]string{"boot", overlay}, "it is an overlay on " + img},
		{[]string{"boot", "-i", filepath.Join(dir, "no-key"), img, "--", "true"}, "-i " + filepath.Join(dir, "no-key")},
		{[]string{"boot", "--backend", "xen", img}, `--backend "xen" (or DIBVM_BACKEND): use qemu or libvirt`},
		{[]string{"boot", "--connect", "qemu:///session", img}, "--connect qemu:///session: a libvirt URI needs --backend libvirt"},
		// Refused as written: nothing is dialed.
		{[]string{"boot", "--backend", "libvirt", "--connect", "qemu+ssh://builder@hypervisor.invalid/session", img}, "on a libvirt daemon on this host only"},
	} {
		r := dibvm(t, env, time.Minute, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("dibvm %v: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
		if _, err := os.Stat(started); err == nil {
			t.Errorf("dibvm %v started QEMU: bad input must fail before the VM boots", c.args)
			os.Remove(started)
		}
	}
	if left := entries(t, tmp); len(left) > 0 {
		t.Errorf("left behind in TMPDIR: %v", left)
	}
}
