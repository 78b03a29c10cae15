package cli

import (
	"os"
	"runtime"
	"strings"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
)

// The environment that tells dibvm where the host's VM tools are is read
// here, and only here: the packages below take it as values.

// qemuHost is this host's QEMU as the environment sets it up:
// $DIBVM_QEMU_<ARCH> (e.g. DIBVM_QEMU_ARM64) names the emulator for
// guests of that architecture, $DIBVM_QEMU the one for the host's own,
// and $DIBVM_KVM_DEVICE a KVM device node in an unusual place.
func qemuHost() qemu.Host {
	h := qemu.Host{Emulators: map[string]string{}, KVMDevice: os.Getenv("DIBVM_KVM_DEVICE")}
	for _, arch := range []string{"amd64", "arm64"} {
		if p := os.Getenv("DIBVM_QEMU_" + strings.ToUpper(arch)); p != "" {
			h.Emulators[arch] = p
		}
	}
	if p := os.Getenv("DIBVM_QEMU"); p != "" && h.Emulators[runtime.GOARCH] == "" {
		h.Emulators[runtime.GOARCH] = p
	}
	return h
}

// libvirtSession is the user's session as reaching a libvirt daemon
// takes it: $XDG_RUNTIME_DIR, $SSH_AUTH_SOCK, the home directory, and
// $LIBVIRT_AUTOSTART, which libvirt's own clients read too.
func libvirtSession() libvirt.Session {
	home, _ := os.UserHomeDir()
	return libvirt.Session{
		RuntimeDir:  os.Getenv("XDG_RUNTIME_DIR"),
		SSHAgent:    os.Getenv("SSH_AUTH_SOCK"),
		Home:        home,
		NoAutostart: os.Getenv("LIBVIRT_AUTOSTART") == "0",
		Notices:     os.Stderr,
	}
}

// runtimeDir is where the helper's run directories go when the user
// chose ($DIBVM_RUNTIME_DIR); empty leaves it to host/rundir.
func runtimeDir() string { return os.Getenv("DIBVM_RUNTIME_DIR") }
