package qemu

import (
	"fmt"
	"os"
	"runtime"
)

// Accelerators lists, best first, the accelerators to try for a request:
// "auto" tries the host's hypervisor (kvm on Linux when /dev/kvm, or
// $DIBVM_KVM_DEVICE, opens read-write; hvf on macOS) and then tcg; a named
// one is tried alone. Opening is not proof that a guest will run: the
// caller still bounds the boot and falls back.
func Accelerators(request string) ([]string, error) {
	switch request {
	case "", "auto":
		var out []string
		if hv := hypervisor(); hv != "" {
			out = append(out, hv)
		}
		return append(out, "tcg"), nil
	case "kvm", "hvf", "tcg":
		return []string{request}, nil
	}
	return nil, fmt.Errorf("unknown accelerator %q: use auto, kvm, hvf or tcg", request)
}

func hypervisor() string {
	switch runtime.GOOS {
	case "linux":
		dev := "/dev/kvm"
		if d := os.Getenv("DIBVM_KVM_DEVICE"); d != "" {
			dev = d // a KVM device node in an unusual place
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return ""
		}
		f.Close()
		return "kvm"
	case "darwin":
		return "hvf"
	}
	return ""
}
