//go:build !darwin

package qemu

func hvfSupported() (bool, string) { return false, "Hypervisor.framework exists only on macOS" }
