package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/vmimage"
	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// minFree is the free disk below which doctor warns: a build's scratch
// and output disks are sparse files of up to 20 GiB each by default.
const minFree = 25 << 30

func doctorCommand() *cobra.Command {
	var vf vmFlags
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host for what dibvm needs: QEMU, accelerators, firmware, disk, the mirror",
		Long: `Check this host for what dibvm needs, and say what to install. It finds
QEMU's emulators and qemu-img, boots the helper VM under each accelerator
the host offers (when the helper appliance is cached), looks for UEFI
firmware, the free disk where dibvm keeps its cache and temporary files,
and fetches the Debian mirror's Release file through the helper VM's
egress policy. It exits non-zero when something a build needs is missing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := vf.checkMirror(); err != nil {
				return err
			}
			// Stopped, it still removes what it made.
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			d := &doctor{out: cmd.OutOrStdout()}
			d.run(ctx, &vf)
			if len(d.missing) > 0 {
				fmt.Fprintf(d.out, "\nMissing for builds: %s\n", strings.Join(d.missing, "; "))
				return exitCode(1)
			}
			fmt.Fprintln(d.out, "\nThis host has what dibvm needs.")
			return nil
		},
	}
	vf.registerMirror(cmd.Flags())
	cmd.Flags().StringArrayVar(&vf.allowNet, "allow-net", nil, "as for create: what the egress policy opens (env DIBVM_ALLOW_NET)")
	cmd.Flags().StringArrayVar(&vf.allowOnly, "allow-only", nil, "as for create: all the egress policy lets through (env DIBVM_ALLOW_ONLY)")
	return cmd
}

// doctor checks the host, a line for each finding.
type doctor struct {
	out     io.Writer
	missing []string // what builds need and this host lacks, with how to get it
}

func (d *doctor) line(status, format string, args ...any) {
	fmt.Fprintf(d.out, "  %-4s %s\n", status, fmt.Sprintf(format, args...))
}

// need records something missing that builds need.
func (d *doctor) need(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.line("FAIL", "%s", msg)
	d.missing = append(d.missing, msg)
}

func (d *doctor) run(ctx context.Context, vf *vmFlags) {
	fmt.Fprintf(d.out, "dibvm %s on %s/%s\n", versionLine(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(d.out, "\nQEMU and tools:")
	for _, arch := range []string{runtime.GOARCH, otherArch(runtime.GOARCH)} {
		bin, err := qemuHost().FindBinary(arch)
		switch {
		case err != nil && arch == runtime.GOARCH:
			d.need("%v", err)
		case err != nil:
			d.line("--", "no emulator for %s images (they need it: %s)", arch, qemu.InstallHint(arch))
		default:
			d.line("ok", "%s, for %s images: %s", bin, arch, firstLine(bin, "--version"))
		}
	}
	if img, err := exec.LookPath("qemu-img"); err != nil {
		d.need("qemu-img not found: it converts the outputs (%s)", qemu.InstallHint(runtime.GOARCH))
	} else {
		d.line("ok", "%s: %s", img, firstLine(img, "--version"))
	}

	if ssh, err := exec.LookPath("ssh"); err != nil {
		d.line("--", "no ssh: dibvm boot -- COMMAND logs in with OpenSSH's client (openssh-client)")
	} else {
		d.line("ok", "%s, for dibvm boot -- COMMAND", ssh)
	}

	fmt.Fprintln(d.out, "\nAccelerators (the helper VM booted with each):")
	d.accelerators(ctx, vf)

	fmt.Fprintln(d.out, "\nFirmware (dibvm boot of UEFI images; arm64 images):")
	for _, arch := range []string{runtime.GOARCH, otherArch(runtime.GOARCH)} {
		if fw, err := qemuHost().FindUEFI(arch); err != nil {
			d.line("--", "%v", err)
		} else {
			d.line("ok", "UEFI for %s: %s", arch, fw.Code)
		}
	}

	fmt.Fprintln(d.out, "\nDisk:")
	cache, _ := cacheDir()
	for _, place := range []struct{ what, dir string }{{"cache", cache}, {"temporary files", os.TempDir()}} {
		if place.dir == "" {
			d.line("--", "no %s directory: %v", place.what, "set DIBVM_CACHE_DIR or HOME")
			continue
		}
		dir := existingParent(place.dir)
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			d.line("--", "%s %s: %v", place.what, place.dir, err)
			continue
		}
		free := int64(st.Bavail) * int64(st.Bsize)
		status := "ok"
		if free < minFree {
			status = "warn"
		}
		d.line(status, "%s %s: %s free", place.what, place.dir, progress.Size(free))
	}
	if areas, err := cacheAreas(); err == nil {
		var parts []string
		for _, a := range areas {
			size, _ := usage(a.dirs...)
			parts = append(parts, a.name+" "+progress.Size(size))
		}
		d.line("", "in the cache: %s (dibvm cache ls, dibvm cache prune)", strings.Join(parts, ", "))
	}

	fmt.Fprintln(d.out, "\nlibvirt (--backend libvirt; not needed for builds):")
	d.libvirt()

	fmt.Fprintln(d.out, "\nNetwork (as the helper VM reaches it):")
	d.mirror(ctx, vf)
}

// libvirt says whether the daemon --backend libvirt would use answers,
// and what it runs the helper with.
func (d *doctor) libvirt() {
	uri := envOr("DIBVM_LIBVIRT_URI", libvirt.DefaultURI())
	c, err := libvirt.Connect(uri, libvirtSession())
	if err != nil {
		d.line("--", "%s", oneLine(err))
		return
	}
	defer c.Close()
	types, err := c.DomainTypes(libvirt.Arch(runtime.GOARCH))
	if err != nil {
		d.line("--", "%s", oneLine(err))
		return
	}
	d.line("ok", "%s: libvirt %s, %s guests with %s", c.URI, c.Version(), libvirt.Arch(runtime.GOARCH), strings.Join(types, ", "))
}

// accelerators boots the cached helper appliance under each accelerator
// the host offers: opening /dev/kvm proves nothing until a guest runs.
func (d *doctor) accelerators(ctx context.Context, vf *vmFlags) {
	hv, reason := qemuHost().Hypervisor()
	cache, spec, agent, err := vf.applianceCache()
	var app *vmimage.Appliance
	if err == nil {
		app, err = cache.Lookup(spec, agent)
	}
	accels := []string{"tcg"}
	if hv != "" {
		accels = append([]string{hv}, accels...)
	} else {
		d.line("--", "no hypervisor: %s; builds run under TCG", reason)
	}
	if err != nil {
		for _, a := range accels {
			d.line("--", "%s: not tried: no helper appliance cached yet (dibvm appliance build, or the first build, makes it)", a)
		}
		return
	}
	// The least memory the appliance boots in: what boots there boots in
	// a build's larger default.
	mem, err := machine.MinMemoryMiB(app)
	if err != nil {
		d.need("the helper appliance: %v", err)
		return
	}
	for _, a := range accels {
		start := time.Now()
		m, err := machine.Start(ctx, machine.Options{
			QEMU: qemuHost(), RunDir: runtimeDir(),
			Accel: a, Memory: max(512, mem), CPUs: 1, Appliance: app,
			BootTimeout: 3 * time.Minute, HypervisorTimeout: 15 * time.Second,
		})
		switch {
		case err == nil:
			d.line("ok", "%s: the helper VM booted in %.1f s", a, time.Since(start).Seconds())
			m.Close()
		case a == "tcg":
			d.need("tcg: the helper VM did not boot: %v", oneLine(err))
		default:
			d.line("--", "%s: the helper VM did not boot: %s; builds fall back to TCG", a, oneLine(err))
		}
	}
}

// mirror fetches the mirror's Release file through an egress proxy with
// the user's policy, as the helper VM would.
func (d *doctor) mirror(ctx context.Context, vf *vmFlags) {
	mirror := vf.mirror
	if mirror == "" {
		mirror = debrepo.DefaultMirror
	}
	policy, err := vf.egressPolicy()
	if err != nil {
		d.need("%v", err)
		return
	}
	dir, err := os.MkdirTemp("", "dibvm-doctor-")
	if err != nil {
		d.need("%v", err)
		return
	}
	defer os.RemoveAll(dir)
	p, err := egress.Listen(filepath.Join(dir, "egress.sock"), egress.Options{Policy: policy})
	if err != nil {
		d.need("%v", err)
		return
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	url := strings.TrimSuffix(mirror, "/") + "/dists/stable/Release"
	body, err := p.Fetch(ctx, url, "")
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
		body.Close()
	}
	var refused *egress.Refused
	switch {
	case errors.As(err, &refused):
		d.need("%s: refused by the egress policy: %v", mirror, err)
	case err != nil:
		d.need("%s: %v (a build downloads from it; give another with --mirror, or DIB_APT_SOURCES_CONF for the image's)", mirror, oneLine(err))
	default:
		d.line("ok", "%s: its Release file came in %.1f s", mirror, time.Since(start).Seconds())
	}
}

// otherArch is the architecture that is not goarch, of the two dibvm builds.
func otherArch(goarch string) string {
	if goarch == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// firstLine is the first line bin prints with args.
func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "does not run: " + err.Error()
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func oneLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSuffix(line, ".")
}

// existingParent is dir, or the nearest of its parents that exists.
func existingParent(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || dir == filepath.Dir(dir) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}
