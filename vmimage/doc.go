// Package vmimage builds and caches the helper appliance: a Debian kernel
// and an initramfs holding the guest agent as /init, the kernel modules it
// loads, and the userland that DIB's host-side scripts expect.
//
// Everything comes from a Debian mirror through debrepo, so every byte is
// checked against Debian's archive keys. The result is cached under the
// user's cache directory and, once there, is found again without the
// network.
package vmimage
