package machine

import (
	"slices"
	"strings"
	"testing"
)

// Under TCG the helper's kernel leaves alone the code that multi-threaded
// TCG has been seen to run stale after a live patch: sched_clock (x86's
// TSC) and the timer wheel's static branches (nohz), and maps every
// process at the same addresses, so that QEMU reuses its translations
// across processes (norandmaps). Under a hypervisor it boots as it would
// anywhere.
func TestKernelCmdline(t *testing.T) {
	for _, tc := range []struct {
		goarch, accel string
		want, not     []string
	}{
		{"amd64", "tcg", []string{"console=ttyS0", "nohz=off", "tsc=unstable", "norandmaps", "panic=-1"}, nil},
		{"arm64", "tcg", []string{"console=ttyAMA0", "nohz=off", "norandmaps"}, []string{"tsc=unstable"}},
		{"amd64", "kvm", []string{"console=ttyS0"}, []string{"nohz=off", "tsc=unstable", "norandmaps"}},
		{"arm64", "hvf", []string{"console=ttyAMA0"}, []string{"nohz=off", "tsc=unstable", "norandmaps"}},
	} {
		args := strings.Fields(kernelCmdline(tc.goarch, tc.accel))
		for _, w := range tc.want {
			if !slices.Contains(args, w) {
				t.Errorf("%s %s: %v lacks %s", tc.goarch, tc.accel, args, w)
			}
		}
		for _, n := range tc.not {
			if slices.Contains(args, n) {
				t.Errorf("%s %s: %v has %s", tc.goarch, tc.accel, args, n)
			}
		}
	}
}
