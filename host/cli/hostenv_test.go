package cli

import (
	"runtime"
	"strings"
	"testing"
)

// DIBVM_QEMU_<ARCH> picks the emulator for that architecture;
// DIBVM_QEMU only the host's own.
func TestFindBinaryOverrides(t *testing.T) {
	t.Setenv("DIBVM_QEMU", "/opt/q/host-qemu")
	t.Setenv("DIBVM_QEMU_ARM64", "/opt/q/aarch64")
	t.Setenv("DIBVM_QEMU_AMD64", "")
	if p, err := qemuHost().FindBinary("arm64"); err != nil || p != "/opt/q/aarch64" {
		t.Errorf("arm64: %q %v", p, err)
	}
	if runtime.GOARCH == "amd64" {
		if p, err := qemuHost().FindBinary("amd64"); err != nil || p != "/opt/q/host-qemu" {
			t.Errorf("amd64: %q %v", p, err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("DIBVM_QEMU_ARM64", "")
	if runtime.GOARCH == "amd64" && runtime.GOOS == "linux" { // macOS looks in Homebrew's prefixes too
		if _, err := qemuHost().FindBinary("arm64"); err == nil || !strings.Contains(err.Error(), "qemu-system-aarch64 not found") {
			t.Errorf("arm64 with an empty PATH: %v", err)
		}
	}
}

// DIBVM_KVM_DEVICE names the KVM device node that accelerators are
// probed with.
func TestKVMDeviceFromTheEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KVM device is Linux's")
	}
	t.Setenv("DIBVM_KVM_DEVICE", t.TempDir()+"/no-kvm")
	if hv, reason := qemuHost().Hypervisor(); hv != "" || !strings.Contains(reason, "no-kvm") {
		t.Errorf("Hypervisor() = %q, %q; want none, with the device named", hv, reason)
	}
}
