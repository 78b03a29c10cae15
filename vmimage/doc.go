// Package vmimage builds and caches the helper appliance: a Debian kernel
// and an initramfs holding the guest agent as /init, the kernel modules it
// loads, and the userland that DIB's host-side scripts expect.
//
// Tools that only some builds need (the rpm family's package managers,
// for one) come as named layers: each its own cpio archive, appended to
// the initramfs only for the builds that ask for it, so that the others
// neither unpack nor hold it at boot.
//
// Everything comes from a Debian mirror through debrepo, so every byte is
// checked against Debian's archive keys. The result is cached under the
// user's cache directory and, once there, is found again without the
// network.
package vmimage
