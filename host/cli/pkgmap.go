package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/elements/pkgmap"
)

func pkgMapCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pkg-map --element ELEMENT [--distro D] [--release R] [--missing-ok] [--prefix P] NAME...",
		Short: "Map generic package names to a distribution's, as DIB's pkg-map does",
		Long: `Map package names through an element's pkg-map (in ` + pkgmap.DefaultDir + `, or the file
given with --pkg-map) for the distribution DISTRO_NAME and release DIB_RELEASE.
Exit status 1 means a failure, 2 that the element has no map.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := pkgmap.Main(args, os.Getenv, pkgmap.DefaultDir, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}
