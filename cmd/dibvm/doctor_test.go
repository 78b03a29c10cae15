package main_test

import (
	"strings"
	"testing"
	"time"
)

// dibvm doctor boots the helper under each accelerator, finds QEMU,
// qemu-img and the firmware, and reaches the mirror through the egress
// policy; a mirror the policy refuses is something a build needs.
func TestDoctor(t *testing.T) {
	needVM(t)
	// The helper appliance is cached (built if need be) by a first run.
	if r := dibvm(t, nil, 10*time.Minute, "run", "--", "true"); r.code != 0 {
		t.Fatalf("run -- true: exit %d\n%s", r.code, r.stderr)
	}
	r := dibvm(t, nil, 5*time.Minute, "doctor")
	if r.code != 0 {
		t.Fatalf("doctor: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"dibvm 0.2.0 (commit ", "  ok   ", "qemu-system-x86_64", "qemu-img",
		"tcg: the helper VM booted in ", "UEFI for amd64: ", " free", "in the cache: appliance ",
		"deb.debian.org/debian: its Release file came in ", "This host has what dibvm needs."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor's report lacks %q:\n%s", want, r.stdout)
		}
	}
	// The mirror on the host's loopback is refused before anything is
	// dialed: the policy is checked, not the network.
	r = dibvm(t, nil, 5*time.Minute, "doctor", "--mirror", "http://127.0.0.1:9/debian")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL http://127.0.0.1:9/debian: refused by the egress policy") ||
		!strings.Contains(r.stdout, "Missing for builds: http://127.0.0.1:9/debian: refused") {
		t.Errorf("doctor with a refused mirror: exit %d\n%s", r.code, r.stdout)
	}
}
