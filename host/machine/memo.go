package machine

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/host/qemu"
)

// A hypervisor that opens but never boots a guest (nested KVM often does)
// costs a full timeout on every run. The memo records such a failure for
// this boot of the host and this QEMU binary, so auto goes straight to TCG
// until either changes. An explicit --accel always tries.

type memo map[string]string // accelerator -> fingerprint it failed under

func fingerprint(binary string) string {
	fi, err := os.Stat(binary)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s|%s|%d|%d", bootID(), binary, fi.Size(), fi.ModTime().Unix())
}

func readMemo(path string) memo {
	m := memo{}
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &m)
	}
	return m
}

func skipRemembered(path, binary string, accels []string, notices io.Writer) []string {
	if path == "" {
		return accels
	}
	m, fp := readMemo(path), fingerprint(binary)
	var out []string
	for i, a := range accels {
		if i < len(accels)-1 && fp != "" && m[a] == fp {
			fmt.Fprintf(notices, "dibvm: skipping %s, which did not start a guest earlier on this host (--accel %s tries it anyway)\n", strings.ToUpper(a), a)
			continue
		}
		out = append(out, a)
	}
	return out
}

func remember(path, binary, accel string) {
	if path == "" {
		return
	}
	m := readMemo(path)
	m[accel] = fingerprint(binary)
	b, _ := json.Marshal(m)
	os.MkdirAll(filepath.Dir(path), 0o755)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, path)
	}
}

// Accelerator is the one accelerator to boot something other than the
// helper VM with, where nothing tells a hung hypervisor from a slow
// boot: the best of request's that has not failed to start the helper
// on this host before (see AccelMemo).
func Accelerator(host qemu.Host, request, goarch, memoPath string, notices io.Writer) (string, error) {
	binary, err := host.FindBinary(goarch)
	if err != nil {
		return "", err
	}
	accels, err := host.Accelerators(request, goarch)
	if err != nil {
		return "", err
	}
	return skipRemembered(memoPath, binary, accels, notices)[0], nil
}

// FirstAccelerator is the best of accels (as libvirt offers them) that
// has not failed to start the helper on this host before: for a daemon
// on this host, whose QEMU is this host's.
func FirstAccelerator(host qemu.Host, accels []string, goarch, memoPath string, notices io.Writer) string {
	binary, err := host.FindBinary(goarch)
	if err != nil {
		return accels[0]
	}
	return skipRemembered(memoPath, binary, accels, notices)[0]
}
