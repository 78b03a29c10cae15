# The kernel package: linux-image-generic, -virtual, -kvm or -hwe (the
# release's HWE kernel). package-installs.yaml maps it to a package.
export DIB_UBUNTU_KERNEL=${DIB_UBUNTU_KERNEL:-"linux-image-generic"}
