// Package cli is dibvm's command line.
package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/termsafe"
)

// Version is set at build time.
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := &cobra.Command{
		Use:           "dibvm",
		Short:         "Build diskimage-builder images without root, inside a helper VM",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(runCommand(), createCommand(), applianceCommand(), elementInfoCommand(), pkgMapCommand(), cacheCommand())
	// dibvm also answers to the names of the DIB tools it replaces.
	switch filepath.Base(args[0]) {
	case "disk-image-create":
		args = append([]string{args[0], "create"}, args[1:]...)
	case "element-info":
		args = append([]string{args[0], "element-info"}, args[1:]...)
	case "pkg-map":
		args = append([]string{args[0], "pkg-map"}, args[1:]...)
	}
	root.SetArgs(args[1:])
	err := root.Execute()
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

// exitCode ends dibvm with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
