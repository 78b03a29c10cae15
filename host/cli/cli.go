// Package cli is dibvm's command line.
package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/termsafe"
)

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	cmd := command(filepath.Base(args[0]))
	cmd.SetArgs(args[1:])
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	// dibvm run ends with its command's status, as the command ended; a
	// status wrapped in a longer story is that story, told below.
	if ee, ok := err.(*agentclient.ExitError); ok {
		return ee.Status
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	// Errors can carry names from element trees and text from the guest:
	// shown, never obeyed, by the terminal.
	w := termsafe.NewWriter(os.Stderr)
	defer w.Flush()
	var ue *usageError
	if errors.As(err, &ue) {
		for _, p := range ue.problems {
			fmt.Fprintf(w, "dibvm: %s\n", p)
		}
		return 2
	}
	fmt.Fprintf(w, "dibvm: %v\n", err)
	return 1
}

// command is the command line for the name dibvm runs as: dibvm itself,
// or one of the DIB tools it replaces, which then is that tool alone,
// with its own usage.
func command(name string) *cobra.Command {
	var cmd *cobra.Command
	switch name {
	case "disk-image-create":
		cmd = createCommand()
	case "diskimage-builder":
		cmd = buildCommand()
	case "element-info":
		cmd = elementInfoCommand()
	case "pkg-map":
		cmd = pkgMapCommand()
	default:
		cmd = &cobra.Command{
			Use:     "dibvm",
			Short:   "Build diskimage-builder images without root, inside a helper VM",
			Version: versionLine(),
		}
		cmd.AddCommand(runCommand(), createCommand(), buildCommand(), bootCommand(), customizeCommand(), doctorCommand(), applianceCommand(), elementInfoCommand(), pkgMapCommand(), cacheCommand(), verifyCommand(), rebuildCommand())
		groups(cmd)
	}
	if name != "dibvm" && cmd.Use != "dibvm" {
		// The tool's own name, as its users type it.
		cmd.Use = name + strings.TrimPrefix(cmd.Use, strings.Fields(cmd.Use)[0])
		cmd.Aliases = nil
	}
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(flagError)
	completeFlags(cmd)
	return cmd
}

// exitCode ends dibvm with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
