package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/session"
	"github.com/dibvm/dibvm/host/shellquote"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/vmimage"
)

// createFlags are the flags of dibvm create: DIB's, the helper VM's, and
// --timeout.
type createFlags struct {
	vf          vmFlags
	o           plan.Options
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
	ramdisk     string
	checksum    bool
	clearEnv    bool
	version     bool
	scratch     diskSize
	checkpoints checkpointFlags
	progress    string
	hostPaths   []string // nil unless given: then DIBVM_HOST_PATH counts
	reproduce   bool     // --reproducible
	seed        string   // --seed
	lock        string   // --packages-from
	sign        string   // --sign
	// imageEnv is set over the caller's environment: an image's own
	// variables, from the YAML file that defines it.
	imageEnv func(caller []string) []string
	// summary is where the build's summary goes: where its lines go,
	// beside the terminal's status block or the JSON events.
	summary io.Writer
}

// environFlags are the flags whose setting disk-image-create also takes
// from its environment, by the variable each flag sets there: where the
// flag is not given, the variable counts.
var environFlags = []struct{ flag, variable string }{
	{"arch", "ARCH"},
	{"image-cache", "DIB_IMAGE_CACHE"},
	{"image-size", "DIB_IMAGE_SIZE"},
	{"image-extra-size", "DIB_IMAGE_EXTRA_SIZE"},
	{"max-online-resize", "MAX_ONLINE_RESIZE"},
	{"mkfs-journal-size", "DIB_JOURNAL_SIZE"},
	{"mkfs-options", "MKFS_OPTS"},
	{"root-label", "ROOT_LABEL"},
}

func createCommand() *cobra.Command {
	c := &createFlags{}
	cmd := &cobra.Command{
		Use:     "create [flags] ELEMENT...",
		Aliases: []string{"disk-image-create"},
		Short:   "Build an image from DIB elements, as disk-image-create does",
		Long: `Build an image from diskimage-builder elements. The privileged work runs
in the helper VM; the host gets back only the image. Elements come from
ELEMENTS_PATH, then the built-in library. The caller's environment reaches
the hooks as in DIB, less host-specific variables (PATH, HOME,
SSH_AUTH_SOCK, ...) and secret-shaped ones (*TOKEN*, *SECRET*, *PASSWORD*,
*_KEY*, AWS_*, GITHUB_*, ...): --env passes one anyway, and DIB_* settings
always pass. The variables disk-image-create reads for its flags
(ARCH, DIB_IMAGE_SIZE, DIB_IMAGE_EXTRA_SIZE, DIB_IMAGE_CACHE,
DIB_JOURNAL_SIZE, DIB_CHECKSUM, MAX_ONLINE_RESIZE, MKFS_OPTS, ROOT_LABEL,
FS_TYPE, DIB_QUIET) count where the flag is not given.`,
		Example: `  disk-image-create -o ubuntu -t qcow2 vm ubuntu-minimal
  DIB_RELEASE=bookworm dibvm create -o web -t qcow2,tar -p nginx vm debian-minimal devuser`,
		Args: func(cmd *cobra.Command, args []string) error {
			if c.version {
				return nil
			}
			return atLeastOne("at least one ELEMENT")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.version {
				fmt.Fprintln(cmd.OutOrStdout(), versionLine())
				return nil
			}
			o, closeLog, err := c.options(cmd.Flags(), args)
			if err != nil {
				return err
			}
			defer closeLog()
			return runBuild(&c.vf, o, c.timeout, c.summary)
		},
	}
	groups := c.register(cmd)
	cmd.SetHelpFunc(func(cmd *cobra.Command, _ []string) { createHelp(cmd, groups) })
	completeCreate(cmd)
	return cmd
}

// flagGroups are create's flags as its help shows them: DIB's own, the
// helper VM's, and those dibvm adds.
type flagGroups struct {
	dib, vm, own *pflag.FlagSet
}

func (c *createFlags) register(cmd *cobra.Command) flagGroups {
	g := flagGroups{
		dib: pflag.NewFlagSet("DIB's flags", pflag.ContinueOnError),
		vm:  pflag.NewFlagSet("Helper VM flags", pflag.ContinueOnError),
		own: pflag.NewFlagSet("dibvm's flags", pflag.ContinueOnError),
	}
	o, f := &c.o, g.dib
	f.StringVarP(&o.Output, "output", "o", "image", "image file name, without the type suffix")
	f.StringVarP(&c.types, "type", "t", "qcow2", "output types, comma separated: "+strings.Join(plan.Supported, ", "))
	f.StringVarP(&o.Arch, "arch", "a", "", "architecture of the image: amd64 (x86_64) or arm64 (aarch64) (default $ARCH, else the host's)")
	f.CountVarP(&c.trace, "trace", "x", "trace the hooks (repeatable)")
	f.BoolVarP(&o.SkipBase, "no-base", "n", false, "do not add the base element")
	f.BoolVarP(&c.clearEnv, "clear-env", "c", false, "build with none of the caller's environment variables, as DIB's -c")
	f.BoolVarP(&o.Uncompressed, "uncompressed", "u", false, "do not compress qcow2 images")
	f.BoolVar(&c.checksum, "checksum", false, "write .md5 and .sha256 files beside each output (default from $DIB_CHECKSUM: 1, or md5 and/or sha256)")
	f.Float64Var(&o.ImageSizeGB, "image-size", 0, "image size in GB (default $DIB_IMAGE_SIZE, else from the size of the tree, as DIB)")
	f.Float64Var(&o.ExtraSizeGB, "image-extra-size", 0, "GB to add to the tree's size, instead of DIB's usual margin (default $DIB_IMAGE_EXTRA_SIZE)")
	f.StringVar(&c.rootLabel, "root-label", "", "label of the root filesystem (default $ROOT_LABEL, else cloudimg-rootfs, or img-rootfs for xfs)")
	f.StringArrayVarP(&c.packages, "packages", "p", nil, "extra packages to install, comma separated (repeatable)")
	f.StringVar(&c.installType, "install-type", "", "default install type (sets DIB_DEFAULT_INSTALLTYPE)")
	f.StringVar(&o.ImageCache, "image-cache", "", "host directory that keeps downloaded packages between builds (default $DIB_IMAGE_CACHE, else in the user's cache directory)")
	f.BoolVar(&c.offline, "offline", false, "tell elements not to refresh cached downloads (sets DIB_OFFLINE)")
	f.StringVar(&o.MkfsOptions, "mkfs-options", "", "options for the root filesystem's mkfs, as one string (default $MKFS_OPTS)")
	f.IntVar(&o.JournalMiB, "mkfs-journal-size", 0, "journal size in MiB of an ext4 root filesystem (default $DIB_JOURNAL_SIZE, else 64)")
	f.Int64Var(&o.MaxOnlineResize, "max-online-resize", 0, "most filesystem blocks an ext root can later be grown to online (mkfs -E resize=; default $MAX_ONLINE_RESIZE)")
	f.StringVar(&o.QemuImgOptions, "qemu-img-options", "", "options for qemu-img convert -o of qcow2 outputs, as one string (e.g. compat=0.10)")
	f.StringVar(&o.DockerTarget, "docker-target", "", "repository and tag for importing the docker output (default: the image name)")
	f.StringVar(&c.logfile, "logfile", "", "write the build's output to this file, and not to the terminal unless DIB_QUIET=0")
	f.BoolVar(&c.noTmpfs, "no-tmpfs", false, "accepted for DIB: dibvm builds on a scratch disk, never in RAM")
	f.IntVar(&c.minTmpfs, "min-tmpfs", 0, "accepted for DIB: dibvm builds on a scratch disk, never in RAM")
	f.StringVar(&c.ramdisk, "ramdisk-element", "", "accepted for DIB: it matters only to ramdisk-image-create")
	f.BoolVar(&c.version, "version", false, "print dibvm's version and exit")
	f = g.own
	f.StringVar(&c.progress, "progress", "auto", "how to show the build: plain (DIB's timestamped lines and each step's time), json (one event per line on stdout, docs/events.schema.json), or auto (a live status block on a terminal, else plain)")
	f.DurationVar(&c.timeout, "timeout", 4*time.Hour, "stop the build after this long; 0 for no limit")
	f.Var(&c.scratch, "scratch-size", "size of the build's scratch disk and of its output disk, e.g. 40G (default 20G, or twice --image-size plus 4G if that is more); the files are sparse, so this is the most each can take of the host's disk")
	f.StringArrayVar(&o.ExplicitEnv, "env", nil, "pass NAME=VALUE, or NAME with its value here, to the hooks whatever its name (repeatable)")
	f.StringArrayVar(&c.hostPaths, "host-path", nil, "lend the build, read-only, the host file or directory the variable `VAR` names, and point VAR at the copy, for elements that read a path of the host outside the chroot; repeatable, comma-separated (env DIBVM_HOST_PATH)")
	f.BoolVar(&o.NoHostEnv, "no-host-env", false, "pass the hooks only the caller's DIB_* and break variables, and those of --env")
	f.BoolVar(&c.reproduce, "reproducible", false, "make the outputs the same bytes whenever the inputs are the same: hooks get SOURCE_DATE_EPOCH (the environment's, else 2025-01-01), no time is later, the disk's identifiers derive from --seed (on by itself when SOURCE_DATE_EPOCH is set)")
	f.StringVar(&c.seed, "seed", "", "what a reproducible build's partition table, partition and filesystem identifiers derive from (default: a digest of the build's inputs); implies --reproducible")
	f.StringVar(&c.lock, "packages-from", "", "build with exactly the packages of this lock file (IMAGE.lock, which every build writes): each suite's release file as it was, each package file by its SHA-256, from the image cache, its archive, or a mirror of it such as a snapshot mirror given as DIB_DISTRIBUTION_MIRROR; a file the lock does not name is refused")
	f.StringVar(&c.sign, "sign", "", "sign the provenance statement with this OpenSSH private key (no passphrase), writing IMAGE.provenance.json.sig as ssh-keygen -Y sign -n dibvm-provenance would; dibvm verify --trust checks it (env DIBVM_SIGN_KEY)")
	c.checkpoints.register(f)
	c.vf.register(g.vm)
	for _, fs := range []*pflag.FlagSet{g.dib, g.own, g.vm} {
		cmd.Flags().AddFlagSet(fs)
	}
	return g
}

// options turns the flags and the environment into the build's options.
// The returned func closes the log file, if any.
func (c *createFlags) options(f *pflag.FlagSet, elements []string) (plan.Options, func(), error) {
	o, err := c.check(f, elements)
	if err != nil {
		return o, func() {}, err
	}
	closeLog, err := c.output(&o)
	return o, closeLog, err
}

// check turns the flags and the environment into the build's options,
// every problem of the command line found before any is reported; where
// the output goes is left to output.
func (c *createFlags) check(f *pflag.FlagSet, elements []string) (plan.Options, error) {
	env := c.environ()
	// Every problem of the command line is found before any is reported.
	var p problems
	c.fromEnviron(f, env, &p)
	o := c.o // with what the environment set
	o.Environ = env
	if arch, err := debianArch(o.Arch); err != nil {
		p.addErr(err)
	} else {
		o.Arch = arch
		// The helper VM is of the image's architecture: its chroot runs
		// the image's binaries natively, with no binfmt emulation in the
		// guest. (Debian names amd64 and arm64 as Go does.)
		c.vf.arch = arch
		c.vf.checkInto(&p)
	}
	c.checkNumbers(f, &p)
	o.Elements = elements
	o.Types = splitList(c.types)
	checkTypeList(c.types, o.Types, &p)
	o.Trace = c.trace > 0
	for _, list := range c.packages {
		for _, name := range splitList(list) {
			if !packageName.MatchString(name) {
				p.add("-p %s: %q is not a package name (Debian's: lower-case letters, digits and + - ., optionally =VERSION; rpm's: letters, digits and _ + - .)", list, name)
			}
			o.Packages = append(o.Packages, name)
		}
	}
	var err error
	if o.Checksums, err = checksums(c.checksum, envvar.Get(o.Environ, "DIB_CHECKSUM")); err != nil {
		p.addErr(err)
	}
	c.settings(&o, env)
	o.Reproducible = c.reproducible(env, time.Now(), &p)
	o.HelperTools = c.vf.helperToolNames()
	o.Environ = exportInto(env, c.exported(&o))
	resolveEnv(&o, c.hostPathVars())
	if o.Checkpoints, err = c.checkpoints.options(o.Environ); err != nil {
		p.addErr(err)
	}
	if o.Checkpoints != nil && c.vf.backend == machine.BackendLibvirt && libvirt.IsRemote(c.vf.libvirtURI()) {
		// Checkpoints are qcow2 layers in the local store, which a daemon
		// on another host cannot open.
		fmt.Fprintln(os.Stderr, "dibvm: a build on a remote libvirt neither resumes from checkpoints nor keeps any")
		o.Checkpoints = nil
	}
	if pol, err := c.vf.egressPolicy(); err == nil && c.vf.network == "nat" {
		// (A policy that does not parse is among the problems already.)
		o.Egress = &pol
	}
	checkImageMirrors(o.Environ, &p)
	c.checkFiles(&o, &p)
	o.PackagesFrom = c.packagesFrom(&o, &p)
	if key := cmp.Or(c.sign, envvar.Get(env, "DIBVM_SIGN_KEY")); key != "" {
		if o.Sign, err = sshsign.LoadSigner(key); err != nil {
			p.add("--sign (or DIBVM_SIGN_KEY): %v", err)
		}
	}
	if !slices.Contains([]string{"auto", "plain", "json"}, c.progress) {
		p.add("--progress %s: give auto, plain or json", c.progress)
	}
	if err := p.err(); err != nil {
		return o, err
	}
	o.ScratchSize, o.ScratchSizeGiven = int64(c.scratch), c.scratch > 0
	if o.ScratchSize == 0 {
		o.ScratchSize = defaultScratch(o.ImageSizeGB)
	}
	return o, nil
}

// checkFiles checks where the build reads and writes on the host: the
// image cache, the output, the log file, and qemu-img's options.
func (c *createFlags) checkFiles(o *plan.Options, p *problems) {
	if o.ImageCache == "" {
		var err error
		if o.ImageCache, err = defaultImageCache(); err != nil {
			p.addErr(err)
		}
	} else if err := checkWritableDir(o.ImageCache); err != nil {
		p.add("--image-cache %s (or DIB_IMAGE_CACHE): %v", o.ImageCache, err)
	}
	checkOutput(o, p)
	if c.logfile != "" {
		if dir := filepath.Dir(c.logfile); !isDir(dir) {
			p.add("--logfile %s: %s is not a directory: create it first", c.logfile, dir)
		} else if isDir(c.logfile) {
			p.add("--logfile %s: is a directory; give a file name", c.logfile)
		}
	}
	if o.QemuImgOptions != "" {
		if err := checkQemuImgOptions(o.QemuImgOptions); err != nil {
			p.add("--qemu-img-options %s: %v", o.QemuImgOptions, err)
		}
	}
}

// output points the build's output at the terminal and the log file,
// through the reporter --progress asks for. As in DIB, --logfile sends
// it to the file alone unless DIB_QUIET=0, and DIB_QUIET=1 keeps it off
// the terminal. dibvm's own errors still go to stderr. With
// --progress=json, stdout carries the events alone, and the lines go
// to stderr.
func (c *createFlags) output(o *plan.Options) (func(), error) {
	quiet := c.logfile != ""
	if q := envvar.Get(o.Environ, "DIB_QUIET"); q != "" {
		quiet = q == "1"
	}
	var out, errOut io.Writer = os.Stdout, os.Stderr
	if c.progress == "json" {
		out = os.Stderr
	}
	if quiet {
		out, errOut = io.Discard, io.Discard
	}
	closeLog := func() {}
	if c.logfile != "" {
		f, err := os.OpenFile(c.logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return func() {}, fmt.Errorf("--logfile: %w", err)
		}
		note := os.Stdout
		if c.progress == "json" {
			note = os.Stderr
		}
		fmt.Fprintf(note, "Output logs going to: %s\n", c.logfile)
		out, errOut = io.MultiWriter(out, f), io.MultiWriter(errOut, f)
		closeLog = func() { f.Close() }
	}
	switch {
	case c.progress == "json":
		o.Progress = progress.NewJSON(os.Stdout, out)
	case c.progress == "auto" && !quiet && c.logfile == "" && onTerminal(os.Stdout):
		o.Progress = progress.NewTerminal(os.Stdout)
		// Whatever else the build prints goes above the status block.
		errOut = o.Progress.Log()
	default:
		o.Progress = progress.NewPlain(out)
	}
	if t := timings(); t != nil {
		o.Progress.Estimating(t, progress.TimingsKey(o.Arch, o.Types, append(slices.Clone(o.Elements), o.Packages...)))
	}
	o.Stdout, o.Stderr = o.Progress.Log(), errOut
	c.summary = out
	return closeLog, nil
}

// timings is dibvm/timings in the user's cache directory, or
// DIBVM_TIMINGS_DIR: how long the last build of each element set took,
// step by step.
func timings() *progress.Timings {
	if d := os.Getenv("DIBVM_TIMINGS_DIR"); d != "" {
		return &progress.Timings{Dir: d}
	}
	dir, err := cacheDir()
	if err != nil {
		return nil
	}
	return &progress.Timings{Dir: filepath.Join(dir, "timings")}
}

// onTerminal says whether f is a terminal that can draw a status block.
func onTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// runBuild boots the VM and builds, stopping cleanly on a signal or the
// timeout, and sums the build up on summary.
func runBuild(vf *vmFlags, o plan.Options, timeout time.Duration, summary io.Writer) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	rep := o.Progress
	vf.notices = o.Stderr
	defer func() {
		s := rep.Finish(err)
		if err == nil {
			s.Print(summary, tryCommand(o))
		}
	}()
	p, err := plan.Prepare(o)
	if err != nil {
		return err
	}
	if o.Expect != nil {
		if err := o.Expect(p); err != nil {
			return err
		}
	}
	rep.Event(progress.Event{Kind: progress.BuildStart, Elements: p.Elements()})
	if c := o.Checkpoints; c != nil {
		// The registries that share checkpoints share the appliance too.
		vf.shared, _ = c.Shared.(vmimage.Shared)
		vf.sharedMaxAge = c.Limits.MaxAge
	}
	mo, err := vf.machineOptions(ctx, p.HelperTools)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- session.Run(ctx, job(p), mo) }()
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

// tryCommand is the command that boots the build's disk image, if it
// made one.
func tryCommand(o plan.Options) string {
	for _, t := range o.Types {
		if _, ok := diskformat.QemuImg(t); ok {
			return shellquote.Join("dibvm", "boot", o.Output+"."+t)
		}
	}
	return ""
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
