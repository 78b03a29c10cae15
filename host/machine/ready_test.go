package machine

import "testing"

func TestRetryableBootPanic(t *testing.T) {
	for _, c := range []struct {
		accel, reason string
		want          bool
	}{
		{"tcg", "Kernel panic - not syncing: Fatal exception in interrupt", true},
		{"tcg", "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", false},
		{"tcg", "Kernel panic - not syncing: Fatal exception", true},
		{"tcg", "Kernel panic - not syncing: Out of memory and no killable processes...", false},
		{"tcg", "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", false},
		{"kvm", "Kernel panic - not syncing: Fatal exception in interrupt", false},
		{"hvf", "Kernel panic - not syncing: Fatal exception", false},
		{"tcg", "dibvm-agent: fatal: read the input disk: no disk with serial input", false},
		{"tcg", "the guest powered off", false},
		{"tcg", "exit status 1", false},
	} {
		if got := retryableBootPanic(c.accel, c.reason); got != c.want {
			t.Errorf("retryableBootPanic(%q, %q) = %v, want %v", c.accel, c.reason, got, c.want)
		}
	}
}
