// Package api is the contract between dibvm's host and its guest agent:
// every name, file, message and framing both sides must agree on, and
// nothing else. It is all the host sees of the guest: host code imports
// no other guestagent package, and guest code no host package. It uses
// the standard library only, so that the host builds wherever Go does.
//
// A boot goes like this. The host writes the input disk, a read-only ISO
// 9660 image whose virtio-blk serial is InputSerial, holding ConfigFile
// (a Config) and, for a build, SpecFile (a Spec) and ElementsTar. The
// agent, PID 1 of the guest, mounts it at InputDir, configures itself,
// and serves SSH on the virtio-serial port PortName, accepting only the
// host's key. The host then runs commands over that channel: BuildLine
// runs a build, which talks back in control frames on its stdout (see
// WriteMessage), and BreakShellLine opens the shell of a breakpoint. The
// host ends a boot with the global request PoweroffRequest.
package api

// The appliance: what the host builds into the initramfs for the agent.
const (
	AgentPath   = "/init"              // the agent binary, the kernel's init
	ModulesFile = "/etc/dibvm/modules" // the kernel modules the agent loads at boot, one a line
)

// The input disk.
const (
	InputSerial = "dibvm-input"      // its virtio-blk serial
	InputFSType = "iso9660"          // its filesystem
	InputDir    = "/run/dibvm/input" // where the agent mounts it
	ConfigFile  = "config.json"      // a Config, on every boot
	SpecFile    = "build.json"       // a Spec, for a build
	ElementsTar = "elements.tar"     // for a build: the merged hooks (HooksDir) and the elements' files (ElementsDir)
)

// The top-level directories of ElementsTar. The host writes them
// (elements.WriteTar) and reads them back to key checkpoints and to know
// the hooks a build may run; the guest unpacks the tar onto its scratch
// disk and runs the hooks from there.
const (
	// HooksDir holds the merged hook tree, HooksDir/<phase>/<script>:
	// what DIB calls $TMP_HOOKS_PATH.
	HooksDir = "hooks"
	// ElementsDir holds each element's own files,
	// ElementsDir/<element>/<path>.
	ElementsDir = "elements"
)

// LentDir is where the guest unpacks the host's files and directories
// lent to a build (Spec.HostPaths), on its scratch disk, and mounts them
// read-only; hooks find them through the variables that lend them.
const LentDir = "/build/lent"

// LentDisksDir holds, for each variable that lends the build a host file
// as a disk (Spec.HostDiskNames), a directory named after the variable
// with a link named as the host's file to the disk's device. It is in
// the helper's memory, not on the scratch disk: a resumed build's
// devices are found anew.
const LentDisksDir = "/run/dibvm-lent"

// The build's other disks, found by their virtio-blk serials.
const (
	ScratchSerial = "dibvm-scratch" // the guest's work space, a blank disk
	OutputSerial  = "dibvm-output"  // where the guest writes the result
	// ImageSerial is the existing disk image dibvm customize opens: a
	// layer over the user's image, which the guest writes.
	ImageSerial = "dibvm-image"
)

// Services the host's egress proxy answers itself, under a name no DNS
// server answers. The guest reaches them through its proxy like any
// other URL.
const (
	// ServiceHost is the proxy's own host name.
	ServiceHost = "dibvm.invalid"
	// DebootstrapPath takes debootstrap's arguments (mirror, suite, arch,
	// components, variant) as a query and the keyring as a POST body,
	// and answers with the tarball `debootstrap --unpack-tarball` reads.
	DebootstrapPath = "/debootstrap"
	// DebootstrapEnv is the variable that gives every command its URL
	// when the guest has a network.
	DebootstrapEnv = "DIBVM_DEBOOTSTRAP_URL"
	DebootstrapURL = "http://" + ServiceHost + DebootstrapPath
	// SourceCachePath and a key (see SourceCacheKey) name a file the
	// source-repositories element keeps across builds in the host's
	// image cache: a GET answers it, a PUT replaces it.
	SourceCachePath = "/source-repositories/"
	// SourceCacheEnv gives every command its URL when the guest has a
	// network.
	SourceCacheEnv = "DIBVM_SOURCE_CACHE_URL"
	SourceCacheURL = "http://" + ServiceHost + SourceCachePath
)

// SourceCacheKey is what a key of the source cache looks like: DIB's
// name of a repository's cache (the repository's name with every
// character outside [A-Za-z0-9] as _, then _ and a SHA-1 of its type and
// location), and what the element keeps of it (.bundle, a git bundle of
// a clone; .file, a download).
const SourceCacheKey = `^[A-Za-z0-9_]{1,128}_[0-9a-f]{40}\.(bundle|file)$`

// The control channel.
const (
	// PortName is the virtio-serial port that carries the SSH control
	// channel.
	PortName = "org.dibvm.agent.0"
	// PoweroffRequest is the SSH global request that asks the agent to
	// power the VM off.
	PoweroffRequest = "poweroff@dibvm"
)

// Agent commands, as the host runs them over the control channel: the
// agent binary at AgentPath serves each one.
const (
	BuildCommand      = "dib-build"
	BreakShellCommand = "dib-break-shell"
	// CustomizeCommand, followed by a shell command line, mounts the
	// disk ImageSerial's root as extract-image finds it and runs the
	// line chrooted into it: its exit status is the command's.
	CustomizeCommand = "customize-image"
	// CustomizeExitOpen is CustomizeCommand's exit status when it could
	// not open the image or put it back, as chroot(1) exits 125 when it
	// fails itself: the command's own statuses pass through as they are.
	CustomizeExitOpen = 125

	// BuildLine runs the build that the input disk describes.
	BuildLine = AgentPath + " " + BuildCommand + " " + InputDir
	// BreakShellLine opens the shell of the breakpoint the build is
	// stopped at.
	BreakShellLine = AgentPath + " " + BreakShellCommand
)

// The agent's console lines start with LogPrefix. When the agent cannot
// go on, its last line is LogPrefix + Fatal + the reason, and it powers
// the VM off: the host shows that line as why the VM stopped.
const (
	LogPrefix = "dibvm-agent: "
	Fatal     = "fatal: "
)
