package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/build"
	"github.com/dibvm/dibvm/vmimage"
)

func createCommand() *cobra.Command {
	var (
		vf          vmFlags
		o           build.Options
		types       string
		packages    []string
		trace       int
		installType string
		rootLabel   string
		timeout     time.Duration
		offline     bool
		logfile     string
		noTmpfs     bool
		minTmpfs    int
		version     bool
		clearEnv    bool
	)
	cmd := &cobra.Command{
		Use:     "create [flags] ELEMENT...",
		Aliases: []string{"disk-image-create"},
		Short:   "Build an image from DIB elements, as disk-image-create does",
		Long: `Build an image from diskimage-builder elements. The privileged work runs
in the helper VM; the host gets back only the image. Elements come from
ELEMENTS_PATH, then the built-in library. DIB_* variables are passed to the
elements' hooks.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if version {
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if version {
				fmt.Fprintln(cmd.OutOrStdout(), Version)
				return nil
			}
			if err := vf.check(); err != nil {
				return err
			}
			arch, err := debianArch(o.Arch)
			if err != nil {
				return err
			}
			o.Arch = arch
			o.Elements = args
			o.Types = splitList(types)
			o.Trace = trace > 0
			for _, p := range packages {
				o.Packages = append(o.Packages, splitList(p)...)
			}
			o.Environ = os.Environ()
			if clearEnv {
				// DIB's -c re-executes itself with an empty environment:
				// nothing of the caller's (ELEMENTS_PATH, DIB_*, break=,
				// MKFS_OPTS) reaches the build; flags still do.
				o.Environ = nil
				if !cmd.Flags().Changed("image-cache") {
					o.ImageCache = ""
				}
				if !cmd.Flags().Changed("mkfs-options") {
					o.MkfsOptions = ""
				}
			}
			if rootLabel != "" {
				o.Environ = append(o.Environ, "DIB_ROOT_LABEL="+rootLabel)
			}
			if o.ImageSizeGB < 0 || o.ExtraSizeGB < 0 {
				return fmt.Errorf("--image-size and --image-extra-size cannot be negative")
			}
			if installType != "" {
				o.Environ = append(o.Environ, "DIB_DEFAULT_INSTALLTYPE="+installType)
			}
			if o.ImageCache == "" {
				if o.ImageCache, err = defaultImageCache(); err != nil {
					return err
				}
			}
			if offline {
				o.Environ = append(o.Environ, "DIB_OFFLINE=1")
			}
			o.Stdout, o.Stderr = os.Stdout, os.Stderr
			if logfile != "" {
				f, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return fmt.Errorf("--logfile: %w", err)
				}
				defer f.Close()
				o.Stdout, o.Stderr = io.MultiWriter(os.Stdout, f), io.MultiWriter(os.Stderr, f)
			}
			if o.MaxOnlineResize < 0 {
				return fmt.Errorf("--max-online-resize cannot be negative")
			}
			// The build is always on a scratch disk; hooks still see the
			// settings as disk-image-create exports them.
			if noTmpfs {
				o.Environ = append(o.Environ, "DIB_NO_TMPFS=1")
			}
			if minTmpfs > 0 {
				o.Environ = append(o.Environ, fmt.Sprintf("DIB_MIN_TMPFS=%d", minTmpfs))
			}
			o.ScratchSize = 64 << 30
			return runBuild(&vf, o, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "image", "image file name, without the type suffix")
	f.StringVarP(&types, "type", "t", "qcow2", "output types, comma separated")
	f.StringVarP(&o.Arch, "arch", "a", "", "architecture of the image (default: the host's)")
	f.CountVarP(&trace, "trace", "x", "trace the hooks (repeatable)")
	f.BoolVarP(&o.SkipBase, "no-base", "n", false, "do not add the base element")
	f.BoolVarP(&clearEnv, "clear-env", "c", false, "build with none of the caller's environment variables, as DIB's -c")
	f.BoolVarP(&o.Uncompressed, "uncompressed", "u", false, "do not compress qcow2 images")
	f.BoolVar(&o.Checksum, "checksum", false, "write .md5 and .sha256 files beside each output")
	f.Float64Var(&o.ImageSizeGB, "image-size", 0, "image size in GB (default: from the size of the tree, as DIB)")
	f.Float64Var(&o.ExtraSizeGB, "image-extra-size", 0, "GB to add to the tree's size, instead of DIB's usual margin")
	f.StringVar(&rootLabel, "root-label", "", "label of the root filesystem (sets DIB_ROOT_LABEL; default cloudimg-rootfs)")
	f.StringArrayVarP(&packages, "packages", "p", nil, "extra packages to install, comma separated (repeatable)")
	f.StringVar(&installType, "install-type", "", "default install type (sets DIB_DEFAULT_INSTALLTYPE)")
	f.DurationVar(&timeout, "timeout", 3*time.Hour, "stop the build after this long")
	f.StringVar(&o.ImageCache, "image-cache", os.Getenv("DIB_IMAGE_CACHE"), "host directory that keeps downloaded packages between builds (default $DIB_IMAGE_CACHE, else in the user's cache directory)")
	f.BoolVar(&offline, "offline", false, "tell elements not to refresh cached downloads (sets DIB_OFFLINE)")
	f.StringVar(&o.MkfsOptions, "mkfs-options", os.Getenv("MKFS_OPTS"), "options for the root filesystem's mkfs, as one string (default $MKFS_OPTS)")
	f.Int64Var(&o.MaxOnlineResize, "max-online-resize", 0, "most filesystem blocks an ext root can later be grown to online (mkfs -E resize=)")
	f.StringVar(&o.QemuImgOptions, "qemu-img-options", "", "options for qemu-img convert -o of qcow2 outputs, as one string (e.g. compat=0.10)")
	f.StringVar(&logfile, "logfile", "", "also write the build's output to this file")
	f.BoolVar(&noTmpfs, "no-tmpfs", false, "accepted for DIB: dibvm builds on a scratch disk, never in RAM")
	f.IntVar(&minTmpfs, "min-tmpfs", 0, "accepted for DIB: dibvm builds on a scratch disk, never in RAM")
	f.BoolVar(&version, "version", false, "print dibvm's version and exit")
	vf.register(f)
	return cmd
}

// runBuild boots the VM and builds, stopping cleanly on a signal or the
// timeout.
func runBuild(vf *vmFlags, o build.Options, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	plan, err := build.Prepare(o)
	if err != nil {
		return err
	}
	mo, err := vf.machineOptions(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- plan.Run(ctx, mo) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Run notices too, through the VM stopping; wait for its cleanup.
		err := <-done
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("the build took longer than --timeout %s and was stopped", timeout)
		}
		if err != nil {
			return fmt.Errorf("stopped by a signal: %w", err)
		}
		return nil
	}
}

// defaultImageCache is DIB's ~/.cache/image-create, in dibvm's part of
// the user's cache directory.
func defaultImageCache() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user's cache directory for the image cache (or give --image-cache): %w", err)
	}
	return filepath.Join(dir, "dibvm", "image-create"), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// debianArch accepts DIB's -a values: Debian names and uname -m names.
func debianArch(a string) (string, error) {
	switch a {
	case "":
		return vmimage.DebianArch(runtime.GOARCH)
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("-a %s: dibvm builds amd64 (x86_64) and arm64 (aarch64) images", a)
}
