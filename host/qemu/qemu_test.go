package qemu

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// A CPU model is checked against the emulator's own list before it boots.
func TestCheckCPUModel(t *testing.T) {
	if _, err := (Host{}).FindBinary(runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"amd64": "cortex-a57", "arm64": "Nehalem"}[runtime.GOARCH]
	own := map[string]string{"amd64": "Nehalem", "arm64": "cortex-a57"}[runtime.GOARCH]
	for model, want := range map[string]string{
		"auto": "", "max": "", own: "",
		other:          "does not know this CPU model",
		"nosuch":       "does not know this CPU model",
		"max,la57=off": "give auto, max or a CPU model name",
		"":             "give auto, max or a CPU model name",
	} {
		err := Host{}.CheckCPUModel(model, runtime.GOARCH)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckCPUModel(%q) = %v, want %q", model, err, want)
		}
	}
}

// A hypervisor runs only guests of the host's architecture: auto offers
// it only for those, and naming it for another architecture is an error
// that says what to use.
func TestAcceleratorsForAForeignGuest(t *testing.T) {
	h := Host{KVMDevice: os.DevNull} // opens read-write: a stand-in hypervisor
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	got, err := h.Accelerators("auto", foreign)
	if err != nil || !slices.Equal(got, []string{"tcg"}) {
		t.Errorf("auto for %s: %v %v, want [tcg]", foreign, got, err)
	}
	if runtime.GOOS == "linux" {
		got, err = h.Accelerators("auto", runtime.GOARCH)
		if err != nil || !slices.Equal(got, []string{"kvm", "tcg"}) {
			t.Errorf("auto for %s: %v %v, want [kvm tcg]", runtime.GOARCH, got, err)
		}
	}
	for _, hv := range []string{"kvm", "hvf"} {
		if _, err := h.Accelerators(hv, foreign); err == nil || !strings.Contains(err.Error(), "--accel tcg") {
			t.Errorf("--accel %s for %s: %v, want an error naming --accel tcg", hv, foreign, err)
		}
	}
	if runtime.GOOS == "linux" {
		if _, err := h.Accelerators("hvf", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "not available here") {
			t.Errorf("--accel hvf on Linux: %v, want it refused at once, saying why", err)
		}
		h.KVMDevice = filepath.Join(t.TempDir(), "no-kvm")
		if _, err := h.Accelerators("kvm", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "no-kvm") {
			t.Errorf("--accel kvm without the device: %v, want it refused at once, naming the device", err)
		}
	}
	if _, err := h.Accelerators("bogus", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "DIBVM_ACCEL") {
		t.Errorf("--accel bogus: %v, want an error naming the flag and the variable", err)
	}
}

// With no hypervisor device, auto is TCG alone, and the reason is kept.
func TestNoHypervisorSaysWhy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KVM device is Linux's")
	}
	hv, reason := Host{KVMDevice: filepath.Join(t.TempDir(), "no-kvm")}.Hypervisor()
	if hv != "" || !strings.Contains(reason, "no-kvm") {
		t.Errorf("Hypervisor() = %q, %q; want none, with the device named", hv, reason)
	}
}

// Homebrew's QEMU keeps its edk2 builds in its keg's share/qemu, which
// is found from the emulator's prefix.
func TestFindUEFIUnderAPrefix(t *testing.T) {
	keg := t.TempDir()
	for _, name := range []string{"edk2-aarch64-code.fd", "edk2-arm-vars.fd", "edk2-x86_64-code.fd", "edk2-i386-vars.fd"} {
		os.MkdirAll(filepath.Join(keg, "share", "qemu"), 0o755)
		os.WriteFile(filepath.Join(keg, "share", "qemu", name), []byte("fd"), 0o644)
	}
	var relative []UEFI
	for _, f := range uefiPaths["arm64"] {
		if !filepath.IsAbs(f.Code) {
			relative = append(relative, f)
		}
	}
	f, ok := findUEFI(relative, []string{"/nonexistent", keg})
	if !ok || f.Code != filepath.Join(keg, "share/qemu/edk2-aarch64-code.fd") || f.Vars != filepath.Join(keg, "share/qemu/edk2-arm-vars.fd") {
		t.Errorf("arm64 firmware under %s: %+v %v", keg, f, ok)
	}
	if _, ok := findUEFI(relative, []string{t.TempDir()}); ok {
		t.Error("found firmware in an empty prefix")
	}
}

// On a Debian host with install-deps.sh's packages, both are found.
func TestFindUEFIHere(t *testing.T) {
	if !isFile("/etc/debian_version") {
		t.Skip("the packaged firmware paths checked here are Debian's")
	}
	for arch, want := range map[string]string{"amd64": "/usr/share/OVMF/OVMF_CODE_4M.fd", "arm64": "/usr/share/AAVMF/AAVMF_CODE.fd"} {
		f, err := Host{}.FindUEFI(arch)
		if err != nil || f.Code != want {
			t.Errorf("FindUEFI(%s) = %+v, %v; want %s (scripts/install-deps.sh installs it)", arch, f, err, want)
		}
	}
}
