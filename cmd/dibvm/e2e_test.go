//go:build e2e

package main_test

// The end-to-end builds of real Debian images take many minutes under
// TCG, so they run with `make e2e` rather than `make test`.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestE2EDebianMinimalTree(t *testing.T) {
	out := filepath.Join(t.TempDir(), "deb")
	r := dibvm(t, nil, 60*time.Minute, "create", "-n", "-t", "tar", "-o", out, "debian-minimal")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	files := readTar(t, out+".tar")
	osRelease := files["usr/lib/os-release"]
	if !strings.Contains(osRelease, `ID=debian`) {
		t.Errorf("os-release: %q", osRelease)
	}
	if !strings.Contains(files["etc/apt/sources.list.d/debian.sources"], "deb.debian.org/debian") {
		t.Errorf("apt sources: %q", files["etc/apt/sources.list.d/debian.sources"])
	}
	t.Logf("debian-minimal tree built in %s", r.took)
}
