package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/vmimage"
)

func applianceCommand() *cobra.Command {
	var vf vmFlags
	cmd := &cobra.Command{
		Use:   "appliance",
		Short: "Manage the cached helper appliance (kernel and initramfs)",
	}
	vf.registerMirror(cmd.PersistentFlags())
	vf.registerArch(cmd.PersistentFlags())
	vf.registerHelperTools(cmd.PersistentFlags())
	cmd.AddCommand(
		&cobra.Command{
			Use:   "build",
			Short: "Build the helper appliance, or refresh it from the mirror",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				cache, spec, agent, layers, err := vf.applianceWithTools()
				if err != nil {
					return err
				}
				start := time.Now()
				a, err := cache.Build(context.Background(), spec, agent, true, layers...)
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
				cache, spec, agent, layers, err := vf.applianceWithTools()
				if err != nil {
					return err
				}
				a, err := cache.Lookup(spec, agent, layers...)
				if err != nil {
					return fmt.Errorf("%w: run `dibvm appliance build`", err)
				}
				m := a.Manifest
				fmt.Printf("mirror:   %s\nsuite:    %s (%s)\narch:     %s\nkernel:   %s (%s %s)\npackages: %d\nbuilt:    %s\nkernel image: %s\ninitramfs:    %s (%d MiB)\n",
					m.Spec.Mirror, m.Spec.Suite, m.Suite, m.Spec.Arch, m.KernelVersion, m.Kernel.Name, m.Kernel.Version,
					len(m.Packages), m.Built.Format(time.RFC3339), a.Kernel, a.Initrd, fileSize(a.Initrd)>>20)
				for _, l := range a.Layers {
					fmt.Printf("tools layer:  %s (%d packages, built %s)\n", l.Layer.Name, len(l.Packages), l.Built.Format(time.RFC3339))
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "path",
			Short: "Print the paths of the cached kernel and initramfs",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				cache, spec, agent, layers, err := vf.applianceWithTools()
				if err != nil {
					return err
				}
				a, err := cache.Lookup(spec, agent, layers...)
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

// applianceWithTools is applianceCache with the tool layers
// --helper-tools names.
func (vf *vmFlags) applianceWithTools() (*vmimage.Cache, vmimage.Spec, vmimage.Agent, []vmimage.Layer, error) {
	if err := vf.checkHelperTools(); err != nil {
		return nil, vmimage.Spec{}, vmimage.Agent{}, nil, err
	}
	layers, _ := vmimage.Layers(vf.helperToolNames())
	cache, spec, agent, err := vf.applianceCache()
	return cache, spec, agent, layers, err
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
