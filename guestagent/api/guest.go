package api

// Names two guest programs agree on, the build and a tool it runs or the
// shell the host opens: the host never reads them, but both ends must
// spell them alike, so they are here with the rest.
const (
	// BreakFile is where the build, stopped at a breakpoint, leaves the
	// settings of the shell BreakShellCommand starts.
	BreakFile = "/run/dibvm/break.json"
	// FailureFileEnv names, for dib-run-parts, the file where it records
	// a hook's failure for the build that started it.
	FailureFileEnv = "DIBVM_FAILURE_FILE"
	// TargetFailureFile is that file for the hooks of a phase run in the
	// target's chroot: a path inside the target.
	TargetFailureFile = "/tmp/dibvm-failure.json"
)

// The names the agent answers to as a tool, by the name it was started
// under: the build puts it into the hooks tree under each, for hooks to
// call, and the agent's main dispatches on them.
const (
	RunPartsTool              = "dib-run-parts"
	PkgMapTool                = "pkg-map"
	PackageInstallsTool       = "package-installs-v2"
	PackageInstallsSquashTool = "package-installs-squash"
)
