package rpmstandin

import (
	"io/fs"
	"maps"
	"slices"
)

// BootableUserland are DefaultUserland and what an image built from the
// stand-in needs to boot and be logged in to: Debian's cloud kernel,
// dracut (which makes the initramfs on CentOS too), GRUB for BIOS and
// UEFI, the XFS tools and OpenSSH's server. The arch is a Debian
// architecture; only amd64 has GRUB for both firmwares.
func BootableUserland(arch string) []string {
	extra := []string{"dracut", "grub-common", "grub2-common", "xfsprogs", "e2fsprogs",
		"dosfstools", "openssh-server", "openssh-client"}
	switch arch {
	case "arm64":
		extra = append(extra, "linux-image-cloud-arm64", "grub-efi-arm64-bin")
	default:
		extra = append(extra, "linux-image-cloud-amd64", "grub-efi-amd64-bin", "grub-pc-bin")
	}
	return append(slices.Clone(DefaultUserland), extra...)
}

// BootableWithout keeps Debian's initramfs-tools out of a bootable
// userland: the kernel's dependency is met by dracut, as on CentOS.
var BootableWithout = []string{"initramfs-tools", "initramfs-tools-*"}

// behaviour is what a named package of the stand-in does besides
// marking its name installed: the files and scriptlets that make the
// userland's Debian programs act, where DIB's elements and a booted
// image can tell, as the real package would.
type behaviour struct {
	files     []File
	requires  []string
	post      string
	posttrans string
}

// behaviours are keyed by package name. Each scriptlet does nothing
// where the userland lacks what it works on (a userland without a
// kernel or GRUB, as DefaultUserland is), so one repository serves
// both bootable and tar-only tests.
func behaviours(efiVendor string) map[string]behaviour {
	all := initramfsBehaviours()
	maps.Copy(all, bootBehaviours(efiVendor))
	return all
}

// initramfsBehaviours are those of the kernel, the initramfs and what
// goes into it.
func initramfsBehaviours() map[string]behaviour {
	return map[string]behaviour{
		// Fedora's kernel-core runs kernel-install in %posttrans, which
		// runs depmod and dracut; Debian's kernel ships no modules.dep.
		"kernel": {posttrans: `for dir in /usr/lib/modules/*/; do
    [ -e "$dir/modules.order" ] || continue
    v=$(basename "$dir")
    depmod -a "$v"
    if command -v dracut >/dev/null; then
        dracut -f "/boot/initramfs-$v.img" "$v"
    fi
done
`},
		// openSUSE's kernel-default runs its initramfs tool in %posttrans
		// as Fedora's does, and DIB's zypper element runs mkinitrd
		// (openSUSE's wrapper of dracut) itself in post-install.d.
		"kernel-default": {
			files:     []File{{Path: "/usr/sbin/mkinitrd", Mode: 0o755, Data: []byte(mkinitrd)}},
			posttrans: "/usr/sbin/mkinitrd\n",
		},
		// openSUSE's glibc-locale ships every locale compiled, and
		// zypper-minimal's post-install.d removes all but C.utf8 and
		// en_US (with pipefail, so it fails where there is none to
		// remove). The stand-in's ships two, as placeholders.
		"glibc-locale": {files: localeDirs("en_US.utf8", "de_DE.utf8")},
		// Debian's systemd 257 loads libkmod with dlopen, which Debian's
		// dracut 106 does not follow into the initramfs (its kmod links
		// its own copy): without the library udev loads no driver there,
		// and the root's disk never appears. Fedora's dracut brings it.
		"dracut": {files: []File{{Path: "/usr/lib/dracut/dracut.conf.d/50-standin-libkmod.conf", Mode: 0o644,
			Data: []byte("install_optional_items+=\" /usr/lib/x86_64-linux-gnu/libkmod.so.2 /usr/lib/aarch64-linux-gnu/libkmod.so.2 \"\n")}}},
		// As Fedora's: an initramfs for any machine, not the builder's.
		"dracut-config-generic": {files: []File{{Path: "/usr/lib/dracut/dracut.conf.d/02-generic-image.conf",
			Mode: 0o644, Data: []byte("hostonly=\"no\"\n")}}},
	}
}

// bootBehaviours are those of the loaders in the ESP, GRUB's tools, and
// what a booted system needs to be logged in to.
func bootBehaviours(efiVendor string) map[string]behaviour {
	efiDir := "/boot/efi/EFI/" + efiVendor
	return map[string]behaviour{
		// Fedora's grub2-efi-x64 ships grubx64.efi in the vendor's
		// directory of the ESP, with the modules it needs built in and
		// its prefix there, so it reads the grub.cfg DIB's bootloader
		// copies beside it. The stand-in makes one from Debian's
		// modules when installed (the ESP is mounted by then, as DIB's
		// bootloader installs it in finalise.d).
		"grub2-efi-x64": {post: `dir=/usr/lib/grub/x86_64-efi
[ -d "$dir" ] && [ -d /boot/efi ] || exit 0
mods=""
for m in ` + grubEFIModules + `; do
    [ -e "$dir/$m.mod" ] && mods="$mods $m"
done
mkdir -p ` + efiDir + `
grub-mkimage -O x86_64-efi -d "$dir" -p /EFI/` + efiVendor + ` -o ` + efiDir + `/grubx64.efi $mods
`},
		// Fedora's shim-x64 is the loader firmware finds at the
		// removable-media path, which then loads grubx64.efi. Without
		// Secure Boot the stand-in's is GRUB itself.
		"shim-x64": {requires: []string{"grub2-efi-x64"}, post: `[ -e ` + efiDir + `/grubx64.efi ] || exit 0
mkdir -p /boot/efi/EFI/BOOT
cp ` + efiDir + `/grubx64.efi /boot/efi/EFI/BOOT/BOOTX64.EFI
cp ` + efiDir + `/grubx64.efi ` + efiDir + `/shimx64.efi
`},
		// Fedora's grub2-tools names GRUB's programs grub2-*.
		"grub2-tools": {files: grub2Links()},
		// Fedora's openssh-server has sshd.service, its %pre makes the
		// sshd account, and host keys are made at first boot; Debian's
		// postinst would copy the default sshd_config.
		"openssh-server": {
			files: []File{{Path: "/usr/lib/systemd/system/sshd.service", Mode: 0o644, Data: []byte(sshdService)}},
			post: `if [ -x /usr/sbin/sshd ]; then
    getent passwd sshd >/dev/null || useradd -r -d /run/sshd -s /usr/sbin/nologin sshd
    if [ ! -e /etc/ssh/sshd_config ] && [ -e /usr/share/openssh/sshd_config ]; then
        cp /usr/share/openssh/sshd_config /etc/ssh/sshd_config
    fi
fi
`},
		// Fedora's systemd makes /etc/machine-id when installed; with
		// none, the booted system has no machine ID for its DHCP
		// client's identifier, and networkd fails the interface.
		"systemd": {post: `if command -v systemd-machine-id-setup >/dev/null; then
    systemd-machine-id-setup >/dev/null 2>&1 || :
fi
`},
		// CentOS's NetworkManager brings up every wired interface with
		// DHCP; the stand-in's has systemd-networkd do that.
		"NetworkManager": {
			files: []File{{Path: "/usr/lib/systemd/network/80-standin-dhcp.network", Mode: 0o644,
				Data: []byte("[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n")}},
			post: `if [ -e /usr/lib/systemd/system/systemd-networkd.service ]; then
    systemctl enable systemd-networkd.service
fi
`},
	}
}

// grubEFIModules are built into the stand-in's grubx64.efi: what the
// grub.cfg that grub-mkconfig writes loads, as Fedora builds them in.
const grubEFIModules = "normal configfile linux echo test true search search_fs_uuid search_fs_file " +
	"search_label part_gpt part_msdos fat xfs ext2 lvm gzio all_video efi_gop font gfxterm serial " +
	"terminal terminfo loadenv boot chain reboot halt sleep regexp minicmd cat ls gettext bli efifwsetup"

// grub2Links are the grub2-* names of Debian's GRUB programs.
func grub2Links() []File {
	var out []File
	for _, p := range []struct{ dir, name string }{
		{"/usr/sbin", "grub-install"}, {"/usr/sbin", "grub-mkconfig"}, {"/usr/sbin", "grub-probe"},
		{"/usr/bin", "grub-mkimage"}, {"/usr/bin", "grub-editenv"}, {"/usr/bin", "grub-mkrelpath"},
		{"/usr/bin", "grub-script-check"},
	} {
		out = append(out, File{Path: p.dir + "/grub2-" + p.name[len("grub-"):],
			Mode: fs.ModeSymlink | 0o777, Target: p.name})
	}
	return out
}

// sshdService is the stand-in's sshd.service: Debian's sshd, with the
// host keys made before it starts as Fedora's sshd-keygen does.
const sshdService = `[Unit]
Description=OpenSSH server daemon (dibvm's CentOS stand-in: Debian's sshd)
After=network.target

[Service]
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D
ExecReload=/bin/kill -HUP $MAINPID
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
Restart=on-failure

[Install]
WantedBy=multi-user.target
`

// mkinitrd is the stand-in's /usr/sbin/mkinitrd, as openSUSE's: an
// initramfs made by dracut for each kernel with modules (none in a
// userland without a kernel). It takes openSUSE's -A and -B, which its
// callers give, and needs neither.
const mkinitrd = `#!/bin/sh
for dir in /usr/lib/modules/*/; do
    [ -e "$dir/modules.order" ] || continue
    v=$(basename "$dir")
    depmod -a "$v"
    if command -v dracut >/dev/null; then
        dracut -f "/boot/initrd-$v" "$v"
    fi
done
`

// localeDirs are compiled locales' directories in /usr/lib/locale, each
// with a placeholder of its LC_IDENTIFICATION.
func localeDirs(names ...string) []File {
	out := []File{{Path: "/usr/lib/locale", Mode: fs.ModeDir | 0o755}}
	for _, n := range names {
		out = append(out, File{Path: "/usr/lib/locale/" + n, Mode: fs.ModeDir | 0o755},
			File{Path: "/usr/lib/locale/" + n + "/LC_IDENTIFICATION", Mode: 0o644, Data: []byte(n + ": a placeholder of dibvm's stand-in\n")})
	}
	return out
}
