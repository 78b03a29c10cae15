package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/dibvm/dibvm/host/vm"
)

// UEFI is a UEFI firmware for QEMU's pflash, as vm.Machine takes it.
type UEFI vm.UEFI

// uefiPaths are where distributions and Homebrew put edk2 builds for
// QEMU, by guest architecture, best first: Debian and Ubuntu (ovmf,
// qemu-efi-aarch64), Fedora (edk2-ovmf, edk2-aarch64), and QEMU's own
// copies, which Homebrew installs under its share/qemu.
var uefiPaths = map[string][]UEFI{
	"amd64": {
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
		{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
		{"share/qemu/edk2-x86_64-code.fd", "share/qemu/edk2-i386-vars.fd"},
	},
	"arm64": {
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
		{"share/qemu/edk2-aarch64-code.fd", "share/qemu/edk2-arm-vars.fd"},
	},
}

// FindUEFI returns the UEFI firmware for goarch guests, or an error that
// says what to install. Relative paths are looked up under the prefix
// QEMU was installed in (Homebrew's /opt/homebrew or /usr/local, or any
// other, found from the emulator's own path).
func (h Host) FindUEFI(goarch string) (UEFI, error) {
	if f, ok := findUEFI(uefiPaths[goarch], h.prefixes(goarch)); ok {
		return f, nil
	}
	pkg := "ovmf"
	if goarch == "arm64" {
		pkg = "qemu-efi-aarch64"
	}
	if runtime.GOOS == "darwin" {
		return UEFI{}, fmt.Errorf("no UEFI firmware for %s guests found: Homebrew's qemu ships it (brew install qemu)", goarch)
	}
	return UEFI{}, fmt.Errorf("no UEFI firmware for %s guests found: install %s (Debian, Ubuntu) or edk2-ovmf / edk2-aarch64 (Fedora)", goarch, pkg)
}

// findUEFI returns the first of candidates whose two files exist, a
// relative one under any of prefixes.
func findUEFI(candidates []UEFI, prefixes []string) (UEFI, bool) {
	for _, f := range candidates {
		if filepath.IsAbs(f.Code) {
			if isFile(f.Code) && isFile(f.Vars) {
				return f, true
			}
			continue
		}
		for _, p := range prefixes {
			c, v := filepath.Join(p, f.Code), filepath.Join(p, f.Vars)
			if isFile(c) && isFile(v) {
				return UEFI{c, v}, true
			}
		}
	}
	return UEFI{}, false
}

// qemuPrefixes are the installation prefixes QEMU may have been installed
// under: that of the emulator dibvm runs (bin/..), then Homebrew's.
func (h Host) prefixes(goarch string) []string {
	var out []string
	if p, err := h.FindBinary(goarch); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		out = append(out, filepath.Dir(filepath.Dir(p)))
	}
	for _, bin := range homebrewBins {
		out = append(out, filepath.Dir(bin))
	}
	return out
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// FindQboot returns qboot, the minimal firmware QEMU ships for booting an
// x86 kernel directly, or "" when this QEMU has none (SeaBIOS, QEMU's
// default, then boots the helper a quarter of a second slower under TCG).
// It lives in QEMU's data directory, share/qemu under its prefix.
func (h Host) FindQboot(goarch string) string {
	if goarch != "amd64" {
		return ""
	}
	for _, p := range append(h.prefixes(goarch), "/usr") {
		if f := filepath.Join(p, "share/qemu/qboot.rom"); isFile(f) {
			return f
		}
	}
	return ""
}
