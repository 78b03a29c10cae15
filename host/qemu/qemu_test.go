package qemu

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The machine, console and CPU follow the guest's architecture, not the
// host's: an arm64 helper on an x86 host is a virt machine under TCG.
func TestArgsFollowTheGuestsArchitecture(t *testing.T) {
	for _, tc := range []struct {
		arch, accel     string
		model           string
		machine, cpu    string
		accelArg        string
		consoleDevice   string
		binary, aptName string
	}{
		{"amd64", "tcg", "", "pc", "Nehalem,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "auto", "pc", "Nehalem,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "max", "pc", "max", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "qemu64", "pc", "qemu64,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "kvm", "max", "pc", "host", "kvm", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"arm64", "tcg", "auto", "virt", "max,pauth-impdef=on", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "tcg", "max", "virt", "max,pauth-impdef=on", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "tcg", "cortex-a57", "virt", "cortex-a57", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "hvf", "", "virt", "host", "hvf", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
	} {
		c := &Config{Arch: tc.arch, Accel: tc.accel, CPUModel: tc.model, Memory: 512, CPUs: 2, Kernel: "k", Initrd: "i",
			ConsoleLog: "c", QMPSocket: "q", AgentSocket: "a", AgentPort: "p"}
		args := c.Args()
		for flag, want := range map[string]string{"-machine": tc.machine, "-cpu": tc.cpu, "-accel": tc.accelArg} {
			i := slices.Index(args, flag)
			if i < 0 || args[i+1] != want {
				t.Errorf("%s/%s: %s is not %q in %q", tc.arch, tc.accel, flag, want, args)
			}
		}
		if got := ConsoleDevice(tc.arch); got != tc.consoleDevice {
			t.Errorf("%s: console %s, want %s", tc.arch, got, tc.consoleDevice)
		}
		if got, _ := BinaryName(tc.arch); got != tc.binary {
			t.Errorf("%s: emulator %s, want %s", tc.arch, got, tc.binary)
		}
		if runtime.GOOS == "linux" && !strings.Contains(InstallHint(tc.arch), tc.aptName) {
			t.Errorf("%s: the install hint %q does not name %s", tc.arch, InstallHint(tc.arch), tc.aptName)
		}
	}
}

// A CPU model is checked against the emulator's own list before it boots.
func TestCheckCPUModel(t *testing.T) {
	if _, err := FindBinary(runtime.GOARCH); err != nil {
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
		err := CheckCPUModel(model, runtime.GOARCH)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckCPUModel(%q) = %v, want %q", model, err, want)
		}
	}
}

// A hypervisor runs only guests of the host's architecture: auto offers
// it only for those, and naming it for another architecture is an error
// that says what to use.
func TestAcceleratorsForAForeignGuest(t *testing.T) {
	t.Setenv("DIBVM_KVM_DEVICE", os.DevNull) // opens read-write: a stand-in hypervisor
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	got, err := Accelerators("auto", foreign)
	if err != nil || !slices.Equal(got, []string{"tcg"}) {
		t.Errorf("auto for %s: %v %v, want [tcg]", foreign, got, err)
	}
	if runtime.GOOS == "linux" {
		got, err = Accelerators("auto", runtime.GOARCH)
		if err != nil || !slices.Equal(got, []string{"kvm", "tcg"}) {
			t.Errorf("auto for %s: %v %v, want [kvm tcg]", runtime.GOARCH, got, err)
		}
	}
	for _, hv := range []string{"kvm", "hvf"} {
		if _, err := Accelerators(hv, foreign); err == nil || !strings.Contains(err.Error(), "--accel tcg") {
			t.Errorf("--accel %s for %s: %v, want an error naming --accel tcg", hv, foreign, err)
		}
	}
	if runtime.GOOS == "linux" {
		if _, err := Accelerators("hvf", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "not available here") {
			t.Errorf("--accel hvf on Linux: %v, want it refused at once, saying why", err)
		}
		t.Setenv("DIBVM_KVM_DEVICE", filepath.Join(t.TempDir(), "no-kvm"))
		if _, err := Accelerators("kvm", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "no-kvm") {
			t.Errorf("--accel kvm without the device: %v, want it refused at once, naming the device", err)
		}
	}
	if _, err := Accelerators("bogus", runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "DIBVM_ACCEL") {
		t.Errorf("--accel bogus: %v, want an error naming the flag and the variable", err)
	}
}

// With no hypervisor device, auto is TCG alone, and the reason is kept.
func TestNoHypervisorSaysWhy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KVM device is Linux's")
	}
	t.Setenv("DIBVM_KVM_DEVICE", filepath.Join(t.TempDir(), "no-kvm"))
	hv, reason := Hypervisor()
	if hv != "" || !strings.Contains(reason, "no-kvm") {
		t.Errorf("Hypervisor() = %q, %q; want none, with the device named", hv, reason)
	}
}

// DIBVM_QEMU_<ARCH> picks the emulator for that architecture;
// DIBVM_QEMU only the host's own.
func TestFindBinaryOverrides(t *testing.T) {
	t.Setenv("DIBVM_QEMU", "/opt/q/host-qemu")
	t.Setenv("DIBVM_QEMU_ARM64", "/opt/q/aarch64")
	t.Setenv("DIBVM_QEMU_AMD64", "")
	if p, err := FindBinary("arm64"); err != nil || p != "/opt/q/aarch64" {
		t.Errorf("arm64: %q %v", p, err)
	}
	if runtime.GOARCH == "amd64" {
		if p, err := FindBinary("amd64"); err != nil || p != "/opt/q/host-qemu" {
			t.Errorf("amd64: %q %v", p, err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("DIBVM_QEMU_ARM64", "")
	if runtime.GOARCH == "amd64" && runtime.GOOS == "linux" { // macOS looks in Homebrew's prefixes too
		if _, err := FindBinary("arm64"); err == nil || !strings.Contains(err.Error(), "qemu-system-aarch64 not found") {
			t.Errorf("arm64 with an empty PATH: %v", err)
		}
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
		f, err := FindUEFI(arch)
		if err != nil || f.Code != want {
			t.Errorf("FindUEFI(%s) = %+v, %v; want %s (scripts/install-deps.sh installs it)", arch, f, err, want)
		}
	}
}
