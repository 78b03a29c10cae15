package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/host/plan"
)

// createEnvironment are the variables create reads, besides the DIB_*
// settings every hook gets, as its help lists them.
var createEnvironment = []struct{ names, what string }{
	{"ELEMENTS_PATH", "directories of elements, searched in order before the built-in ones"},
	{"DIB_*", "reach the hooks, as in DIB (DIB_RELEASE, DIB_APT_SOURCES_CONF, DIB_DEV_USER_*, ...)"},
	{"ARCH DIB_IMAGE_SIZE DIB_IMAGE_EXTRA_SIZE DIB_IMAGE_CACHE DIB_JOURNAL_SIZE MAX_ONLINE_RESIZE MKFS_OPTS ROOT_LABEL", "stand for their flags where the flag is not given"},
	{"DIB_CHECKSUM", "1, or md5 and/or sha256: sum files beside each output (--checksum)"},
	{"DIB_QUIET", "1 keeps the build's lines off the terminal; 0 shows them beside --logfile"},
	{"DIB_BLOCK_DEVICE_CONFIG", "the disk layout (YAML, or file://PATH), instead of the elements'"},
	{"FS_TYPE", "the root filesystem: " + strings.Join(blockdevice.FSTypes, ", ") + " (default ext4)"},
	{"DIB_OFFLINE", "do not refresh cached downloads (--offline)"},
	{"DIB_NO_CHECKPOINTS", "build from the start and keep no checkpoints (--no-checkpoints)"},
	{"break", "stop for a shell: see break= above"},
	{"DIBVM_ACCEL DIBVM_CPU_MODEL DIBVM_MIRROR DIBVM_ALLOW_NET DIBVM_ALLOW_ONLY", "defaults of the helper VM's flags"},
	{"DIBVM_HOST_PATH", "variables whose host paths the build borrows, comma-separated (--host-path)"},
	{"DIBVM_SIGN_KEY", "the OpenSSH private key that signs the provenance statement (--sign)"},
	{"DIBVM_CHECKPOINTS_DIR DIBVM_TIMINGS_DIR", "where checkpoints and build timings are kept (default in the user's cache directory)"},
}

// createHelp is create's help: what it does, its flags by group, and
// what else a build reads.
func createHelp(cmd *cobra.Command, g flagGroups) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s\n\nExamples:\n%s\n", cmd.Long, cmd.UseLine(), cmd.Example)
	for _, fs := range []*pflag.FlagSet{g.dib, g.vm, g.own} {
		fmt.Fprintf(w, "\n%s:\n%s", fs.Name(), fs.FlagUsagesWrapped(100))
	}
	fmt.Fprintf(w, "\nOutput types (-t):\n  %s\n", strings.Join(plan.Supported, ", "))
	fmt.Fprintf(w, "\nbreak= (comma separated):\n  before-PHASE, after-PHASE, after-error\n  PHASE: %s\n", strings.Join(breakpoint.Phases, ", "))
	fmt.Fprintln(w, "\nEnvironment:")
	for _, e := range createEnvironment {
		fmt.Fprintf(w, "  %s\n      %s\n", wrap(e.names, 96, "  "), e.what)
	}
	if lib, err := elements.NewLibrary("", elements.Builtin()); err == nil {
		fmt.Fprintf(w, "\nBuilt-in elements:\n  %s\n", wrap(strings.Join(lib.Names(), " "), 96, "  "))
	}
}

// wrap breaks s at spaces into lines of at most width, each after the
// first led by indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteString("\n" + indent)
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
