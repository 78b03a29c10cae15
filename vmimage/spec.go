package vmimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// formatVersion changes whenever the way an appliance is assembled changes,
// so that caches made by an older dibvm are not reused.
const formatVersion = 6

// Spec says what goes into an appliance.
type Spec struct {
	Mirror   string   `json:"mirror"`
	Suite    string   `json:"suite"`
	Arch     string   `json:"arch"` // Debian architecture name
	Packages []string `json:"packages"`
	// Modules are shipped, with their dependencies, and loaded when the
	// kernel asks for them.
	Modules []string `json:"modules"`
	// BootModules are loaded by the agent at boot: the drivers of the
	// devices it needs to reach the host.
	BootModules []string `json:"boot_modules"`
	// Without are packages (path.Match patterns) that dependencies name
	// but that only commands the helper never runs need.
	Without []string `json:"without,omitempty"`
}

// userland is what DIB's host side and its elements call outside the
// chroot, on top of Debian's Essential set.
var userland = []string{
	"bash", "coreutils", "util-linux", "mount", "fdisk", "e2fsprogs", "dosfstools",
	"xfsprogs", "parted", "gdisk", "kpartx", "dmsetup", "debootstrap", "gpgv",
	"debian-archive-keyring", "ca-certificates",
	// Ubuntu's archive and cloud image keys, for ubuntu-minimal's
	// debootstrap and ubuntu's SHA256SUMS.gpg, as Debian packages them
	// (ubuntu-archive-keyring and ubuntu-cloud-keyring are empty
	// packages that depend on this one).
	"ubuntu-keyring", "curl", "wget", "python3",
	"squashfs-tools", "tar", "xz-utils", "zstd", "cpio", "kmod", "iproute2",
	"procps", "rsync",
	// pvcreate, vgcreate, lvcreate for DIB's lvm node.
	"lvm2",
	// source-repositories clones outside the chroot.
	"git",
	// apt-preferences reads its package manifest with jq outside the
	// chroot (1 MiB with its two libraries).
	"jq",
	// A reproducible build fills the ESP with mcopy: the kernel's vfat
	// draws the short names of long ones from the clock.
	"mtools",
	// kpartx needs udev, which needs "systemd | systemd-standalone-sysusers":
	// naming the small alternative keeps all of systemd out.
	"systemd-standalone-sysusers",
}

// without leaves out what only xfsprogs' online scrubber (xfs_scrub and
// its Python runner) needs: ICU's 37 MB and D-Bus with GLib. The kernel
// unpacks the whole initramfs at every boot, 7 ms a MiB under TCG.
// Likewise Perl and git's manual pages, which git's clone, fetch and
// bundle never use (only git-svn, send-email and the like).
var without = []string{"libicu[0-9]*", "python3-dbus", "perl", "perl-modules-*", "libperl*", "liberror-perl", "git-man"}

// bootModules are the drivers of the virtio devices the agent uses to
// reach the host, which nothing asks the kernel for (udev would, from the
// devices' modaliases), and the input disk's filesystem, loaded with them
// rather than on its own when the agent mounts it.
var bootModules = []string{"virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "virtio_rng", "isofs"}

// modules are what the agent needs to reach its disks, its control port
// and the network, and to make and mount the filesystems DIB builds. All
// but bootModules wait until the kernel asks for them: loading xfs alone
// took 1.2 s of the helper's boot under TCG.
var modules = slices.Concat(bootModules, []string{
	"isofs", "ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "xfs",
	"loop", "dm_mod", "dm_thin_pool", "overlay", "squashfs", "crc32c_generic",
})

// DefaultSpec is the appliance for guests of goarch (the host's when
// empty) from Debian stable on mirror (debrepo.DefaultMirror when empty).
func DefaultSpec(mirror, goarch string) (Spec, error) {
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	arch, err := DebianArch(goarch)
	if err != nil {
		return Spec{}, err
	}
	if mirror == "" {
		mirror = debrepo.DefaultMirror
	}
	return Spec{Mirror: mirror, Suite: "stable", Arch: arch, Packages: userland, Modules: modules, BootModules: bootModules, Without: without}, nil
}

// DebianArch maps a Go architecture to Debian's name for it.
func DebianArch(goarch string) (string, error) {
	switch goarch {
	case "amd64", "arm64", "riscv64", "ppc64le", "s390x":
		if goarch == "ppc64le" {
			return "ppc64el", nil
		}
		return goarch, nil
	}
	return "", fmt.Errorf("no helper appliance for architecture %s", goarch)
}

// key names the cache entry for s.
func (s Spec) key() string {
	b, _ := json.Marshal(struct {
		Format int
		Spec   Spec
	}{formatVersion, s})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
