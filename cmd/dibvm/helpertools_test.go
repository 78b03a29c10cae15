package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rpmToolsCheck prints each of the rpm layer's tools' versions, and fails
// on the first that is missing or does not run.
const rpmToolsCheck = `set -e
rpm --version
dnf --version | head -n1
dnf download --help >/dev/null
yum --version | head -n1
yumdownloader --help >/dev/null
# dnf's local plugin is off: with it, every run fails on its missing repository.
dnf -q repolist --enabled
zypper --version
createrepo_c --version
qemu-img --version | head -n1
mkfs.btrfs --version
umoci --version
skopeo --version
`

// The rpm tools layer, asked for, puts each tool in the helper, and
// each runs; without it, the helper has none of them.
func TestRunHelperToolsRPM(t *testing.T) {
	needVM(t)
	plain := dibvm(t, nil, 10*time.Minute, "run", "--stats", "--", "sh", "-c", "command -v rpm dnf zypper skopeo || echo none")
	if plain.code != 0 || strings.TrimSpace(plain.stdout) != "none" {
		t.Errorf("the helper without layers has rpm tools (exit %d):\n%s\n%s", plain.code, plain.stdout, plain.stderr)
	}
	r := dibvm(t, nil, 20*time.Minute, "run", "--helper-tools", "rpm", "--stats", "--", "sh", "-c", rpmToolsCheck)
	if r.code != 0 {
		t.Fatalf("dibvm run --helper-tools rpm: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"RPM version 4.", "zypper 1.", "(Features:", "qemu-img version", "btrfs-progs v", "umoci version", "skopeo version"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the tools' versions lack %q:\n%s", want, r.stdout)
		}
	}
	// The boot times side by side: what the layer costs a build that
	// asks for it (the lines --stats prints).
	t.Logf("without layers: %s", statsLine(plain.stderr))
	t.Logf("with rpm:       %s", statsLine(r.stderr))
	info := dibvm(t, nil, time.Minute, "appliance", "info", "--helper-tools", "rpm")
	if info.code != 0 || !strings.Contains(info.stdout, "tools layer:  rpm (") {
		t.Errorf("appliance info --helper-tools rpm does not name the layer:\n%s%s", info.stdout, info.stderr)
	}
	paths := dibvm(t, nil, time.Minute, "appliance", "path", "--helper-tools", "rpm")
	if f := strings.Fields(paths.stdout); len(f) != 2 || !strings.Contains(f[1], "+rpm-") {
		t.Errorf("appliance path --helper-tools rpm: %q, want the layered initramfs", paths.stdout)
	}
}

func statsLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "dibvm: stats:") {
			return l
		}
	}
	return "(no stats line)"
}

// A build with one of DIB's rpm-family elements gets the rpm tools
// without asking: a hook outside the chroot runs them.
func TestCreateRPMElementGetsHelperTools(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	// A stand-in for DIB's rpm-distro, by name: the rule reads names.
	write("rpm-distro/README.rst", "A stand-in for DIB's rpm-distro.\n", 0o644)
	write("rpm-tools-user/element-deps", "tiny-os\nrpm-distro\n", 0o644)
	write("rpm-tools-user/post-root.d/50-rpm-tools",
		"#!/bin/bash\nset -eu\n{\n"+rpmToolsCheck+"} > \"$TARGET_ROOT/etc/helper-tools\"\n", 0o755)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + dir + ":" + testElements(t)}
	r := dibvm(t, env, 20*time.Minute, "create", "-n", "-t", "tar", "-o", out, "rpm-tools-user")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	got := readTar(t, out+".tar")["etc/helper-tools"]
	if !strings.Contains(got, "RPM version 4.") || !strings.Contains(got, "skopeo version") {
		t.Errorf("etc/helper-tools = %q, want the tools' versions", got)
	}
}
