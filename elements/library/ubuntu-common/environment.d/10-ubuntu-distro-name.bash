export DISTRO_NAME=${DISTRO_NAME:-ubuntu}
export DIB_RELEASE=${DIB_RELEASE:-noble}
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main,universe}
export EFI_BOOT_DIR="EFI/ubuntu"

# Ubuntu's ports (everything but amd64 and i386) have their own mirror.
case "${ARCH:-}" in
    arm64|armhf|powerpc|ppc64el|s390x|riscv64)
        default_ubuntu_mirror=http://ports.ubuntu.com/ubuntu-ports ;;
    *)
        default_ubuntu_mirror=http://archive.ubuntu.com/ubuntu ;;
esac
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-$default_ubuntu_mirror}
