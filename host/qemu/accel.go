package qemu

import (
	"fmt"
	"os"
	"runtime"
)

// Accelerators lists, best first, the accelerators to try for a guest of
// goarch: "auto" tries the host's hypervisor when it can run that guest
// (kvm on Linux when /dev/kvm, or h.KVMDevice, opens read-write; hvf
// on macOS when the kernel reports Hypervisor.framework support) and then
// tcg; a named one is tried alone, and refused at once when the host
// does not offer it. A guest of another architecture than the host's runs
// only under tcg. Opening is not proof that a guest will run: the caller
// still bounds the boot and falls back.
func (h Host) Accelerators(request, goarch string) ([]string, error) {
	switch request {
	case "", "auto":
		var out []string
		if goarch == runtime.GOARCH {
			if hv, _ := h.Hypervisor(); hv != "" {
				out = append(out, hv)
			}
		}
		return append(out, "tcg"), nil
	case "kvm", "hvf":
		if goarch != runtime.GOARCH {
			return nil, fmt.Errorf("--accel %s (or DIBVM_ACCEL): the helper VM is %s (the image's architecture, or --arch) and this host is %s; a hypervisor runs only guests of its own architecture: use --accel tcg or auto", request, goarch, runtime.GOARCH)
		}
		if hv, reason := h.Hypervisor(); hv != request {
			if hv != "" {
				reason = "this host's hypervisor is " + hv
			}
			return nil, fmt.Errorf("--accel %s (or DIBVM_ACCEL): not available here (%s): use --accel auto or tcg", request, reason)
		}
		return []string{request}, nil
	case "tcg":
		return []string{request}, nil
	}
	return nil, CheckAccelName(request)
}

// CheckAccelName says what is wrong with request as an --accel value,
// whatever host would run the guest.
func CheckAccelName(request string) error {
	switch request {
	case "", "auto", "kvm", "hvf", "tcg":
		return nil
	}
	return fmt.Errorf("accelerator %q (--accel or DIBVM_ACCEL): use auto, kvm, hvf or tcg", request)
}

// Hypervisor names the host's hypervisor accelerator when it is there
// for this user, or says in reason why not.
func (h Host) Hypervisor() (accel, reason string) {
	switch runtime.GOOS {
	case "linux":
		dev := "/dev/kvm"
		if d := h.KVMDevice; d != "" {
			dev = d // a KVM device node in an unusual place
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Sprintf("kvm: %v", err)
		}
		f.Close()
		return "kvm", ""
	case "darwin":
		if ok, why := hvfSupported(); !ok {
			return "", "hvf: " + why
		}
		return "hvf", ""
	}
	return "", "no hypervisor accelerator is known on " + runtime.GOOS
}
