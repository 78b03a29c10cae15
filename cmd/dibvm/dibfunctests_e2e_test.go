//go:build e2e

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EDIBFunctests runs DIB's own functional tests that apply to what
// dibvm builds, the Debian ones, from Debian's python3-diskimage-builder
// through scripts/dib-functests.sh (`make dib-functests`): two real
// Debian builds, each tar output checked as DIB's harness checks it.
// (DIB 3.13's other two Debian tests, debian-minimal/stable-vm and
// testing-build-succeeds, fail in DIB too and are gone from DIB master;
// the harness says why and does not run them.)
func TestE2EDIBFunctests(t *testing.T) {
	cmd := exec.Command("../../scripts/dib-functests.sh", "-b", dibvmBin, "-d", dibElementsDir(t))
	cmd.Env = append(os.Environ(), "DIB_NO_CHECKPOINTS=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("took %s; the harness's table:\n%s", time.Since(start).Round(time.Second), tableOf(string(out)))
	if err != nil {
		t.Errorf("dib-functests: %v\n%s", err, tail(string(out), 120))
	}
	got := functestResults(string(out))
	for _, name := range []string{"debian-minimal/stable-build-succeeds", "debian/build-succeeds"} {
		if got[name] != "PASS" {
			t.Errorf("%s: %q, want PASS", name, got[name])
		}
	}
}

// tableOf is the table at the end of dib-functests.sh's output.
func tableOf(out string) string {
	if i := strings.LastIndex(out, "\nTEST "); i >= 0 {
		return out[i+1:]
	}
	return "(none)"
}

// TestE2EDIBUpstreamElementsDebian builds DIB's upstream elements that
// need a real Debian (packages, systemd units) together in one
// debian-minimal build, from Debian's python3-diskimage-builder as they
// are, and checks each one's effect in the tar.
//
// Not here, each for a reason docs/dib-differences.md gives:
// modprobe-blacklist (its hook has the name of modprobe's, which
// debootstrap depends on), stable-interface-names (biosdevname is no longer in Debian's archive),
// hwburnin (a ramdisk element), and fail2ban (not in DIB 3.13).
// apt-conf, apt-sources and apt-preferences place files only:
// TestDIBUpstreamElementsTinyOS builds them.
func TestE2EDIBUpstreamElementsDebian(t *testing.T) {
	upstream := upstreamElements(t, "dhcp-all-interfaces", "growvols")
	// The built-in dpkg trusts the keys in DIB_ADD_APT_KEYS's directory,
	// which dibvm lends the build: here a copy of Debian's archive keys.
	keys := t.TempDir()
	copyFile(t, "/usr/share/keyrings/debian-archive-keyring.gpg", filepath.Join(keys, "dibvm-test-keys.gpg"))
	out := filepath.Join(t.TempDir(), "deb")
	env := []string{
		"ELEMENTS_PATH=" + upstream,
		"DIB_ADD_APT_KEYS=" + keys,
		"DIB_MODPROBE_BLACKLIST=pcspkr",
		"DIB_DHCP_TIMEOUT=17",
	}
	r := dibvm(t, env, 90*time.Minute, "create", "-t", "tar", "-o", out,
		"debian-minimal", "dhcp-all-interfaces", "growvols")
	t.Logf("the build took %s", r.took.Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout, 80), r.stderr)
	}
	files := readTar(t, out+".tar")
	wantInTar(t, files, map[string][]string{
		"etc/modprobe.d/blacklist.conf":             {"blacklist pcspkr\n"},
		"etc/apt/trusted.gpg.d/dibvm-test-keys.gpg": nil,
		// dhcp-all-interfaces: its script, with the timeout put in, and
		// the systemd unit and udev rule that start it per interface.
		"usr/local/sbin/dhcp-all-interfaces.sh":          {"tries=17\n"},
		"usr/lib/systemd/system/dhcp-interface@.service": {"TimeoutStartSec=34s"},
		"etc/udev/rules.d/99-dhcp-all-interfaces.rules":  {"dhcp-interface@"},
		"usr/local/sbin/growvols":                        {"#!/usr/bin/python3"},
		"usr/lib/systemd/system/growvols.service":        {"growvols"},
		"var/lib/dpkg/status":                            {"Package: ifupdown\n", "Package: isc-dhcp-client\n", "Package: ndisc6\n", "Package: lvm2\n", "Package: gdisk\n", "Package: parted\n", "Package: xfsprogs\n"},
	})
}
