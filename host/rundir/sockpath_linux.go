package rundir

// maxSocketPath is the longest unix socket path Linux takes: sun_path is
// 108 bytes with its NUL.
const maxSocketPath = 107
