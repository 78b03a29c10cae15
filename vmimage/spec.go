package vmimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// formatVersion changes whenever the way an appliance is assembled changes,
// so that caches made by an older dibvm are not reused.
const formatVersion = 5

// Spec says what goes into an appliance.
type Spec struct {
	Mirror   string   `json:"mirror"`
	Suite    string   `json:"suite"`
	Arch     string   `json:"arch"` // Debian architecture name
	Packages []string `json:"packages"`
	// Modules are loaded by the agent at boot, with their dependencies.
	Modules []string `json:"modules"`
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
	// kpartx needs udev, which needs "systemd | systemd-standalone-sysusers":
	// naming the small alternative keeps all of systemd out.
	"systemd-standalone-sysusers",
}

// modules are what the agent needs to reach its disks, its control port
// and the network, and to make and mount the filesystems DIB builds.
var modules = []string{
	"virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "virtio_rng",
	"isofs", "ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "xfs",
	"loop", "dm_mod", "overlay", "squashfs", "crc32c_generic",
}

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
	return Spec{Mirror: mirror, Suite: "stable", Arch: arch, Packages: userland, Modules: modules}, nil
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
