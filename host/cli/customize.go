package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/imageboot"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/overlay"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/shellquote"
)

type customizeFlags struct {
	vf      vmFlags
	output  string
	inPlace bool
	typ     string
	env     map[string]string
}

func customizeCommand() *cobra.Command {
	c := &customizeFlags{}
	cmd := &cobra.Command{
		Use:   "customize [flags] IMAGE -o OUTPUT|--in-place [ELEMENT...] [-- COMMAND [ARGS...]]",
		Short: "Open an existing disk image and run elements or a command in its root",
		Long: `Open IMAGE (raw, qcow2, vhd, vhdx or vmdk) in the helper VM, mount its root,
/boot and EFI system partition as DIB's extract-image finds them in a cloud
image, and change it as root, with the helper's network (through dibvm's
egress proxy, as a build's hooks have it):

- ELEMENTs (from ELEMENTS_PATH, then the built-in library, with their
  dependencies but not base) run as in a build, with the image's root as
  TMP_MOUNT_PATH: every phase but root.d and block-device.d, since the
  image is the root and the disk. No operating-system element is needed;
  give the image's own (debian-minimal, centos, ...) for elements that
  read DISTRO_NAME or install packages. The caller's environment reaches
  the hooks as in dibvm create.
- COMMAND, after --, runs chrooted into the root: alone, with the
  terminal's stdin and stdout and its exit status as dibvm's; after
  ELEMENTs, once their finalise.d is done, its output with theirs.

When all succeed, the changed image is written to OUTPUT (in IMAGE's
format, or -t's), or back into IMAGE with --in-place. IMAGE is never
changed otherwise: the guest writes a layer over it, and a failed or
stopped run leaves no OUTPUT and IMAGE as it was.`,
		Example: `  dibvm customize debian.qcow2 -o custom.qcow2 -- apt-get install -y htop
  dibvm customize --in-place disk.raw -- sh -c 'echo hello > /etc/motd'
  DIB_DEV_USER_AUTHORIZED_KEYS=~/.ssh/id_ed25519.pub dibvm customize centos.qcow2 -o dev.qcow2 centos devuser`,
		Args: func(cmd *cobra.Command, args []string) error {
			pos, command := splitAtDash(cmd, args)
			switch {
			case len(pos) == 0:
				return usagef("give the IMAGE to open first: %s", cmd.UseLine())
			case command != nil && len(command) == 0:
				return usagef("give the COMMAND to run in the image after --: %s", cmd.UseLine())
			case len(pos) == 1 && command == nil:
				return usagef("give the ELEMENTs to run in %s, or a COMMAND to run in it after --: %s", pos[0], cmd.UseLine())
			case len(command) > 0 && strings.TrimSpace(command[0]) == "":
				return usagef("the COMMAND after -- is %q: give a program to run, e.g. -- cat /etc/os-release", command[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, command := splitAtDash(cmd, args)
			return c.run(pos[0], pos[1:], command)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "write the changed image to `OUTPUT` (a new file), leaving IMAGE as it is")
	f.BoolVar(&c.inPlace, "in-place", false, "write the changes into IMAGE itself")
	f.StringVarP(&c.typ, "type", "t", "", "OUTPUT's format: "+strings.Join(diskformat.Types(), ", ")+" (default the one OUTPUT's extension names, else IMAGE's)")
	f.StringToStringVarP(&c.env, "env", "e", nil, "set an environment variable for COMMAND and the elements' hooks (KEY=VALUE, repeatable)")
	c.vf.register(f)
	c.vf.registerArch(f)
	return cmd
}

// splitAtDash splits args at --: the image and elements before it, the
// command after it (nil without --).
func splitAtDash(cmd *cobra.Command, args []string) (pos, command []string) {
	dash := cmd.ArgsLenAtDash()
	if dash < 0 {
		return args, nil
	}
	return args[:dash], append([]string{}, args[dash:]...)
}

// check says what is wrong with the flags and IMAGE before the VM boots,
// and returns IMAGE's format.
func (c *customizeFlags) check(ctx context.Context, image string) (string, error) {
	var p problems
	switch {
	case c.output == "" && !c.inPlace:
		p.add("give -o OUTPUT for the changed image, or --in-place to change %s itself", image)
	case c.output != "" && c.inPlace:
		p.add("-o %s and --in-place: give one, a new file or IMAGE itself", c.output)
	case c.inPlace && c.typ != "":
		p.add("-t %s and --in-place: --in-place keeps IMAGE's format; give -o OUTPUT to write another", c.typ)
	}
	if _, ok := diskformat.QemuImg(c.typ); c.typ != "" && !ok {
		p.add("-t %s: customize writes %s", c.typ, strings.Join(diskformat.Types(), ", "))
	}
	if c.output != "" {
		p.addErr(checkNewFile("-o", c.output, image))
	}
	c.vf.checkInto(&p)
	if err := p.err(); err != nil {
		return "", err
	}
	d, err := imageboot.Inspect(ctx, image)
	if err != nil {
		return "", err
	}
	if c.inPlace {
		// qemu-img commit rewrites clusters in place: a raw or qcow2
		// image takes that; a VMDK's compressed grains (streamOptimized)
		// do not, and would fail halfway through.
		if d.Format != "raw" && d.Format != "qcow2" {
			return "", usagef("--in-place: %s is a %s image; dibvm changes raw and qcow2 images in place: give -o OUTPUT to write a new one", image, d.Format)
		}
		f, err := os.OpenFile(image, os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Errorf("--in-place: %w", err)
		}
		f.Close()
	}
	return d.Format, nil
}

// outputFormat is what OUTPUT is written as: -t's type, else the one its
// extension names (as boot reads it back), else IMAGE's format.
func (c *customizeFlags) outputFormat(imageFormat string) string {
	if f, ok := diskformat.QemuImg(c.typ); ok {
		return f
	}
	if f, ok := diskformat.OfFile(c.output); ok {
		return f
	}
	return imageFormat
}

// checkNewFile says what keeps path from being a new file, other than
// image, that dibvm writes.
func checkNewFile(flag, path, image string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s %s: the file exists; remove it or name another", flag, path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s %s: no directory %s to write it in", flag, path, dir)
	}
	return nil
}

func (c *customizeFlags) run(image string, elements, command []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	format, err := c.check(ctx, image)
	if err != nil {
		return err
	}
	// The layer goes beside what it becomes, on the file system that
	// has room for the image.
	near := image
	if c.output != "" {
		near = c.output
	}
	work, err := os.MkdirTemp(filepath.Dir(near), ".dibvm-customize-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(work)
		}
	}()
	layer, err := overlay.New(ctx, work, image, format)
	if err != nil {
		return err
	}
	if len(elements) > 0 {
		err = c.runElements(layer, work, near, elements, command)
	} else {
		err = c.runIn(ctx, layer, command)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		// A signal after the guest was done still stops the run here.
		return fmt.Errorf("stopped: %s is unchanged and no output was written", image)
	}
	if !c.inPlace {
		mode := os.FileMode(0o644)
		if fi, err := os.Stat(image); err == nil {
			mode = fi.Mode().Perm()
		}
		return layer.Convert(ctx, c.output, c.outputFormat(format), mode)
	}
	// Once the commit starts, IMAGE is being rewritten: a signal must not
	// stop it halfway, and if it fails the layer is all there is of the
	// changes.
	if err := layer.Commit(context.WithoutCancel(ctx)); err != nil {
		keep = true
		return fmt.Errorf("%w\n%s may be partly changed; the changes are kept in %s (qemu-img commit %s writes them into it)",
			err, image, layer.Path, layer.Path)
	}
	return nil
}

// runIn boots the helper with layer as the image's disk and runs command
// in the image's root; the VM is gone when it returns.
func (c *customizeFlags) runIn(ctx context.Context, layer *overlay.Layer, command []string) error {
	opts, err := c.vf.machineOptions(ctx, c.vf.helperToolNames())
	if err != nil {
		return err
	}
	opts.Disks = append(opts.Disks, machine.Disk{Serial: api.ImageSerial, Layer: layer.Path})
	m, err := machine.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	// The command is the image's own software: its output is treated as
	// boot -- COMMAND's is.
	stdout, stderr, flush := commandOutputs(os.Stdout, os.Stderr, term.IsTerminal(int(os.Stdout.Fd())))
	defer flush()
	done := make(chan error, 1)
	go func() {
		done <- m.Client.Run(agentclient.Command{
			Line: shellquote.Join(api.AgentPath, api.CustomizeCommand, shellquote.Join(command...)),
			Env:  c.env, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr,
		})
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("stopped: %s is unchanged and no output was written", layer.Base)
	}
	var ee *agentclient.ExitError
	switch {
	case errors.As(err, &ee) && ee.Status == api.CustomizeExitOpen:
		return fmt.Errorf("%s: exit status %d: the image could not be opened or put back (said above), or the command exited %d; nothing was written",
			layer.Base, ee.Status, ee.Status)
	case errors.As(err, &ee):
		flush()
		fmt.Fprintf(os.Stderr, "dibvm: the command failed (%v); nothing was written\n", ee)
		return ee
	case err != nil:
		return m.Explain(err)
	}
	// The guest unmounted and flushed the image; stopping the VM now
	// makes QEMU write out the layer before the host reads it.
	return m.Close()
}

// runElements runs elements, then command if any, in the image under
// layer as a build does (see plan.Options.Open); name, the file being
// written, names the image for the hooks (IMAGE_NAME). What the build
// writes itself (files hooks leave beside the image, manifests) goes to
// work, which is removed: only the image is customize's output, and
// nothing else may take its name or land beside it before it is written.
func (c *customizeFlags) runElements(layer *overlay.Layer, work, name string, elements, command []string) error {
	env := os.Environ()
	base := filepath.Base(name)
	o := plan.Options{
		Output:   filepath.Join(work, strings.TrimSuffix(base, filepath.Ext(base))),
		Elements: elements, SkipBase: true,
		Environ:      env,
		Open:         layer.Path,
		Break:        envvar.Get(env, "break"),
		FSType:       envvar.Get(env, "FS_TYPE"),
		Offline:      envvar.Get(env, "DIB_OFFLINE") != "",
		ElementsPath: envvar.Get(env, "ELEMENTS_PATH"),
		ScratchSize:  defaultScratch(0),
		Progress:     progress.NewPlain(os.Stderr),
		Stderr:       os.Stderr,
		PassEnv:      "-e NAME=VALUE",
	}
	o.Stdout = o.Progress.Log()
	if len(command) > 0 {
		o.Command = shellquote.Join(command...)
	}
	var err error
	if o.Arch, err = debianArch(c.vf.arch); err != nil {
		return err
	}
	if o.ImageCache, err = defaultImageCache(); err != nil {
		return err
	}
	// -e's settings reach the hooks and the command whatever their
	// names.
	for _, k := range slices.Sorted(maps.Keys(c.env)) {
		o.ExplicitEnv = append(o.ExplicitEnv, k+"="+c.env[k])
	}
	o.HelperTools = c.vf.helperToolNames()
	resolveEnv(&o, splitList(os.Getenv("DIBVM_HOST_PATH")))
	if pol, err := c.vf.egressPolicy(); err == nil && c.vf.network == "nat" {
		o.Egress = &pol
	}
	// No summary: the build's outputs are not customize's, which is the
	// image written afterwards.
	return runBuild(&c.vf, o, 0, io.Discard)
}
