package rpmstandin

// requested is one package name DIB 3.13's elements ask for when they
// build CentOS Stream 9 (DISTRO_NAME=centos, DIB_RELEASE=9-stream, the
// redhat family), after pkg-map, and where the name comes from.
type requested struct {
	name string
	from string
	// provides are further names the real package answers to, which
	// the elements ask for instead.
	provides []string
}

// centosRequested are the names the stand-in has a package for: each
// Requires the userland and holds one small file of its own, so that
// dnf installs and removes it as on CentOS while the userland stays.
var centosRequested = []requested{
	// yum-minimal's root.d/08-yum-chroot: the package manager, with
	// host dnf into the new root, then in the chroot.
	{name: "dnf", from: "yum-minimal root.d/08-yum-chroot (_install_pkg_manager)"},
	{name: "dnf-plugins-core", from: "yum-minimal root.d/08-yum-chroot (_install_pkg_manager)"},
	{name: "curl", from: "yum-minimal root.d/08-yum-chroot (_install_pkg_manager); cache-url package-installs"},
	{name: "libcurl", from: "yum-minimal root.d/08-yum-chroot (_install_pkg_manager, CentOS > 7)"},
	{name: "glibc-minimal-langpack", from: "yum-minimal root.d/08-yum-chroot (_lang_pack)"},
	{name: "glibc-langpack-en", from: "yum-minimal root.d/08-yum-chroot (_lang_pack)"},
	{name: "coreutils", from: "yum-minimal root.d/08-yum-chroot (_extra_pkgs)"},
	{name: "systemd", from: "yum-minimal root.d/08-yum-chroot (_base_packages)"},
	{name: "passwd", from: "yum-minimal root.d/08-yum-chroot (_base_packages)"},
	{name: "findutils", from: "yum-minimal root.d/08-yum-chroot (_base_packages)"},
	{name: "sudo", from: "yum-minimal root.d/08-yum-chroot (_base_packages); devuser package-installs"},
	{name: "util-linux", from: "yum-minimal root.d/08-yum-chroot (_base_packages asks for util-linux-ng, which util-linux provides)", provides: []string{"util-linux-ng"}},
	{name: "systemd-udev", from: "yum-minimal root.d/08-yum-chroot (_base_packages)"},
	// yum-minimal's package-installs.yaml and pkg-map.
	{name: "audit", from: "yum-minimal package-installs"},
	{name: "dracut", from: "yum-minimal package-installs"},
	{name: "dracut-config-generic", from: "yum-minimal package-installs"},
	{name: "grubby", from: "yum-minimal package-installs"},
	{name: "kernel", from: "yum-minimal package-installs"},
	{name: "initscripts", from: "yum-minimal package-installs"},
	{name: "man-pages", from: "yum-minimal package-installs"},
	{name: "redhat-lsb-core", from: "yum-minimal package-installs (lsb_release, pkg-map family redhat)"},
	{name: "redhat-rpm-config", from: "yum-minimal package-installs"},
	{name: "linux-firmware", from: "yum-minimal package-installs (uninstall)"},
	{name: "linux-firmware-whence", from: "yum-minimal package-installs (uninstall)"},
	{name: "NetworkManager", from: "yum-minimal package-installs; simple-init package-installs (when DIB_SIMPLE_INIT_NETWORKMANAGER != 0)"},
	{name: "dhcp-client", from: "yum-minimal package-installs; dhcp-all-interfaces and simple-init ask for dhclient (pkg-map family redhat), which it provides", provides: []string{"dhclient"}},
	// redhat-common's package-installs.yaml; its pkg-map renames
	// only for Fedora and release 8, so 9-stream asks for these names.
	{name: "lsof", from: "redhat-common package-installs"},
	{name: "tcpdump", from: "redhat-common package-installs"},
	{name: "traceroute", from: "redhat-common package-installs"},
	{name: "which", from: "redhat-common package-installs"},
	{name: "gettext", from: "redhat-common package-installs (pre-install.d)"},
	{name: "ca-certificates", from: "redhat-common package-installs"},
	{name: "selinux-policy", from: "redhat-common package-installs"},
	{name: "selinux-policy-targeted", from: "redhat-common package-installs"},
	{name: "libselinux-python", from: "redhat-common package-installs"},
	{name: "policycoreutils", from: "redhat-common package-installs"},
	{name: "policycoreutils-python", from: "redhat-common package-installs"},
	{name: "rng-tools", from: "redhat-common package-installs"},
	{name: "yum-utils", from: "redhat-common finalise.d/01-clean-old-kernels; epel package-installs (pre-install.d)"},
	// base's pkg-map (install.d/00-baseline-environment).
	{name: "iscsi-initiator-utils", from: "base install.d (iscsi_package, pkg-map family redhat)"},
	// bootloader's pkg-map (finalise.d/50-bootloader).
	{name: "grub2-tools", from: "bootloader finalise.d (grub-pc, grub-efi; pkg-map family redhat)"},
	{name: "grub2", from: "bootloader finalise.d (grub-pc, grub-efi; pkg-map family redhat)"},
	{name: "efibootmgr", from: "bootloader finalise.d (grub-efi; pkg-map family redhat)"},
	{name: "grub2-efi-x64", from: "bootloader finalise.d (grub-efi-amd64; pkg-map family redhat)"},
	{name: "grub2-efi-x64-modules", from: "bootloader finalise.d (grub-efi-amd64; pkg-map family redhat)"},
	{name: "shim-x64", from: "bootloader finalise.d (grub-efi-amd64; pkg-map family redhat)"},
	{name: "syslinux-extlinux", from: "bootloader finalise.d (extlinux; pkg-map family redhat)"},
	// Elements often built with centos.
	{name: "openssh-server", from: "openssh-server package-installs"},
	{name: "openssh", from: "runtime-ssh-host-keys package-installs (openssh-client, pkg-map family redhat)"},
	{name: "cloud-init", from: "cloud-init package-installs"},
	{name: "cloud-utils-growpart", from: "growroot package-installs (growpart, pkg-map family redhat)"},
	{name: "e2fsprogs", from: "growroot package-installs"},
	{name: "net-tools", from: "simple-init package-installs"},
	{name: "python3-pyyaml", from: "dracut-regenerate package-installs (PyYAML and python3-PyYAML, pkg-map family redhat)", provides: []string{"PyYAML", "python3-PyYAML"}},
	{name: "python3", from: "ensure-venv package-installs (python3-venv, pkg-map family redhat)"},
	{name: "wget", from: "epel package-installs (pre-install.d)"},
	{name: "rsync", from: "install-static package-installs"},
	{name: "git-core", from: "source-repositories package-installs (git, pkg-map family redhat)"},
}
