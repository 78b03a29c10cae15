//go:build !linux

package rundir

// maxSocketPath is the longest unix socket path macOS and the BSDs take:
// sun_path is 104 bytes with its NUL.
const maxSocketPath = 103
