package cli

import (
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/host/imageboot"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/vmimage"
)

// flagValues are the values a shell completes for flags of these names,
// whichever command has them.
var flagValues = map[string][]string{
	"accel":    {"auto", "kvm", "hvf", "tcg"},
	"arch":     {"amd64", "arm64", "x86_64", "aarch64"},
	"progress": {"auto", "plain", "json"},
	"firmware": {"auto", "bios", "uefi"},
	"backend":  {"qemu", "libvirt"},
	"connect":  {"qemu:///session", "qemu:///system"},
	// The layers dibvm has, a fixed list.
	"helper-tools": vmimage.LayerNames(),
}

// completeFlags registers the completion of every flag of flagValues,
// and of --network (whose values differ by command), on cmd and the
// commands under it.
func completeFlags(cmd *cobra.Command) {
	for name, values := range flagValues {
		if cmd.Flags().Lookup(name) != nil {
			cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	if cmd.Flags().Lookup("network") != nil {
		networks := []string{"nat", "none"}
		if cmd.Name() == "boot" {
			networks = imageboot.Networks
		}
		cmd.RegisterFlagCompletionFunc("network", cobra.FixedCompletions(networks, cobra.ShellCompDirectiveNoFileComp))
	}
	for _, sub := range cmd.Commands() {
		completeFlags(sub)
	}
}

// completeCreate completes create's elements, from ELEMENTS_PATH and the
// built-in library, and -t's types, each after the commas before it.
func completeCreate(cmd *cobra.Command) {
	cmd.ValidArgsFunction = completeElements
	cmd.RegisterFlagCompletionFunc("type", func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		done := toComplete[:strings.LastIndex(toComplete, ",")+1]
		var out []string
		for _, t := range plan.Supported {
			if !strings.Contains(","+done, ","+t+",") {
				out = append(out, done+t)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// completeElements proposes the names of the elements a build can use.
func completeElements(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	lib, err := elements.NewLibrary(os.Getenv("ELEMENTS_PATH"), elements.Builtin())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range lib.Names() {
		if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
