package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// frozenHypervisor writes a QEMU wrapper that behaves like a KVM that
// opens but never runs the guest: asked for kvm, it starts real QEMU with
// its CPUs stopped (-S); asked for tcg, it is plain QEMU.
func frozenHypervisor(t *testing.T) []string {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("needs qemu-system-x86_64: %v", err)
	}
	script := filepath.Join(t.TempDir(), "qemu-frozen-kvm")
	os.WriteFile(script, []byte(`#!/bin/bash
args=(); frozen=
for a in "$@"; do
  case "$a" in
    kvm) args+=(tcg); frozen=1 ;;
    host) args+=(max) ;;
    *) args+=("$a") ;;
  esac
done
[ -n "$frozen" ] && args+=(-S)
exec `+qemu+` "${args[@]}"
`), 0o755)
	cache := t.TempDir()
	return []string{"DIBVM_QEMU=" + script, "DIBVM_KVM_DEVICE=/dev/null", "DIBVM_ACCEL_MEMO=" + filepath.Join(cache, "memo.json")}
}

func TestAccelKVMThatNeverBootsIsBounded(t *testing.T) {
	needVM(t)
	r := dibvm(t, frozenHypervisor(t), 2*time.Minute, "run", "--accel", "kvm", "--", "true")
	if r.code == 0 {
		t.Fatal("a KVM that never runs the guest reported success")
	}
	if !strings.Contains(r.stderr, "KVM did not start the guest") {
		t.Errorf("error does not say KVM did not start:\n%s", r.stderr)
	}
	t.Logf("gave up after %s: %s", r.took, r.stderr)
}

func TestAccelAutoFallsBackToTCG(t *testing.T) {
	needVM(t)
	env := frozenHypervisor(t)
	r := dibvm(t, env, 5*time.Minute, "run", "--accel", "auto", "--", "uname", "-m")
	if r.code != 0 {
		t.Fatalf("auto did not finish on TCG: exit %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "\n"); !strings.Contains(r.stderr, "falling back to TCG") || n != 1 {
		t.Errorf("want exactly one line saying KVM failed and TCG is used, got:\n%s", r.stderr)
	}
	// The next run remembers, and goes straight to TCG.
	r = dibvm(t, env, 5*time.Minute, "run", "--", "true")
	if r.code != 0 || !strings.Contains(r.stderr, "skipping KVM") {
		t.Errorf("second run did not skip the failed KVM: exit %d\n%s", r.code, r.stderr)
	}
}

// A build whose first boot is given up on boots again under TCG with all
// of its inputs: the elements and the build's settings.
func TestCreateAfterFallbackToTCG(t *testing.T) {
	needVM(t)
	env := append(frozenHypervisor(t), "ELEMENTS_PATH="+testElements(t))
	out := filepath.Join(t.TempDir(), "tree")
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "tiny-os")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "falling back to TCG") {
		t.Errorf("the build did not fall back from the frozen KVM:\n%s", r.stderr)
	}
	if len(readTar(t, out+".tar")) == 0 {
		t.Error("the tarball is empty")
	}
}

// On a host with a real /dev/kvm, whether it works or hangs, neither
// --accel kvm nor auto may hang.
func TestAccelKVMOnThisHost(t *testing.T) {
	needVM(t)
	r := dibvm(t, []string{"DIBVM_ACCEL_MEMO=" + filepath.Join(t.TempDir(), "memo")}, 2*time.Minute, "run", "--accel", "kvm", "--", "true")
	if r.code != 0 && !strings.Contains(r.stderr, "KVM did not start the guest") && !strings.Contains(r.stderr, "--accel kvm (or DIBVM_ACCEL): not available here (kvm: ") {
		t.Errorf("--accel kvm failed without saying KVM did not start, or why there is none:\n%s", r.stderr)
	}
	t.Logf("--accel kvm: exit %d after %s: %s", r.code, r.took, strings.TrimSpace(r.stderr))
	r = dibvm(t, []string{"DIBVM_ACCEL_MEMO=" + filepath.Join(t.TempDir(), "memo")}, 5*time.Minute, "run", "--accel", "auto", "--", "true")
	if r.code != 0 {
		t.Errorf("--accel auto failed:\n%s", r.stderr)
	}
}
