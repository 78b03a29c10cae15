package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func applianceCommand() *cobra.Command {
	var vf vmFlags
	cmd := &cobra.Command{
		Use:   "appliance",
		Short: "Manage the cached helper appliance (kernel and initramfs)",
	}
	vf.registerMirror(cmd.PersistentFlags())
	vf.registerArch(cmd.PersistentFlags())
	cmd.AddCommand(
		&cobra.Command{
			Use:   "build",
			Short: "Build the helper appliance, or refresh it from the mirror",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				cache, spec, agent, err := vf.applianceCache()
				if err != nil {
					return err
				}
				start := time.Now()
				a, err := cache.Build(context.Background(), spec, agent, true)
				if err != nil {
					return err
				}
				fmt.Printf("appliance ready in %s: kernel %s, Debian %s\n", time.Since(start).Round(time.Millisecond), a.Manifest.KernelVersion, a.Manifest.Suite)
				return nil
			},
		},
		&cobra.Command{
			Use:   "info",
			Short: "Describe the cached helper appliance",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				cache, spec, agent, err := vf.applianceCache()
				if err != nil {
					return err
				}
				a, err := cache.Lookup(spec, agent)
				if err != nil {
					return fmt.Errorf("%w: run `dibvm appliance build`", err)
				}
				m := a.Manifest
				fmt.Printf("mirror:   %s\nsuite:    %s (%s)\narch:     %s\nkernel:   %s (%s %s)\npackages: %d\nbuilt:    %s\nkernel image: %s\ninitramfs:    %s (%d MiB)\n",
					m.Spec.Mirror, m.Spec.Suite, m.Suite, m.Spec.Arch, m.KernelVersion, m.Kernel.Name, m.Kernel.Version,
					len(m.Packages), m.Built.Format(time.RFC3339), a.Kernel, a.Initrd, fileSize(a.Initrd)>>20)
				return nil
			},
		},
		&cobra.Command{
			Use:   "path",
			Short: "Print the paths of the cached kernel and initramfs",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				cache, spec, agent, err := vf.applianceCache()
				if err != nil {
					return err
				}
				a, err := cache.Lookup(spec, agent)
				if err != nil {
					return fmt.Errorf("%w: run `dibvm appliance build`", err)
				}
				fmt.Println(a.Kernel)
				fmt.Println(a.Initrd)
				return nil
			},
		},
	)
	return cmd
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
