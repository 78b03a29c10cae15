// Package build runs `disk-image-create` on the host side: it expands and
// checks the elements, packs them for the guest, boots the helper VM with
// a scratch disk and an output disk, runs the guest's build, and moves
// the result into place only when it is complete.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/termsafe"
)

// Options are one disk-image-create invocation.
type Options struct {
	Output   string   // -o: the image name, with any directory
	Types    []string // -t
	Elements []string // as given on the command line
	SkipBase bool     // -n
	Arch     string   // -a, Debian naming
	Packages []string // -p
	Trace    bool     // -x
	// Uncompressed is -u: do not compress qcow2 images.
	Uncompressed bool
	// ImageSizeGB and ExtraSizeGB are --image-size and --image-extra-size.
	ImageSizeGB, ExtraSizeGB float64
	// Checksums are the sums written beside each output (md5, sha256):
	// --checksum or DIB_CHECKSUM.
	Checksums []string
	// DockerTarget is --docker-target: the repository and tag of the
	// docker output's import line.
	DockerTarget string
	// JournalMiB is --mkfs-journal-size: an ext4 root's journal.
	JournalMiB int
	// Environ is the caller's environment, with the variables
	// disk-image-create exports for its flags: what the hooks see (less
	// what hookEnv withholds).
	Environ []string
	// The settings below are DIB's, which it takes from a flag or from
	// its environment: the caller resolves each once, and Environ
	// carries the same value to the hooks.

	// RootLabel is --root-label (or ROOT_LABEL, DIB_ROOT_LABEL): the
	// root filesystem's label, empty for DIB's default.
	RootLabel string
	// FSType is FS_TYPE: the root filesystem's type where the layout
	// names none.
	FSType string
	// Break is break=: where the build stops for a shell.
	Break string
	// Offline is --offline (or DIB_OFFLINE): no refresh of cached
	// downloads.
	Offline bool
	// InstallType is --install-type (or DIB_DEFAULT_INSTALLTYPE).
	InstallType string
	// BlockDeviceConfig is DIB_BLOCK_DEVICE_CONFIG: a layout in YAML,
	// or file:// and the path of one.
	BlockDeviceConfig string
	// ElementsPath is ELEMENTS_PATH: where elements are found before
	// the built-in library.
	ElementsPath string
	// ManifestSaveDir is DIB_MANIFEST_SAVE_DIR: where the manifests
	// go, else beside the image.
	ManifestSaveDir string
	// ExplicitEnv are the --env NAME[=VALUE] settings, passed to the
	// hooks whatever their names; NoHostEnv (--no-host-env) passes only
	// DIB_* and break of the caller's own (see hookEnv).
	ExplicitEnv []string
	NoHostEnv   bool
	// ImageCache is --image-cache: the host directory that keeps the
	// build's downloads that never change (see host/egress.Cache).
	ImageCache string
	// MkfsOptions and MaxOnlineResize are --mkfs-options and
	// --max-online-resize, for the root filesystem.
	MkfsOptions     string
	MaxOnlineResize int64
	// QemuImgOptions is --qemu-img-options: qemu-img convert's -o.
	QemuImgOptions string

	ScratchSize int64
	// Checkpoints, when set, keeps the build's tree after its early
	// phases and resumes from what an earlier build kept.
	Checkpoints *Checkpoints
	// Progress, when set, hears of the build's steps and hooks as they
	// start and end, and of what it writes.
	Progress *progress.Reporter

	Stdout, Stderr io.Writer
}

// Supported lists the output types this build can write.
var Supported = []string{"qcow2", "raw", "vhd", "vhdx", "vmdk", api.TypeTar, api.TypeTgz, api.TypeSquashfs, api.TypeDocker}

// Plan is a build whose inputs have been checked and packed.
type Plan struct {
	o      Options
	out    *termsafe.Writer // o.Stdout, flushed after the guest's output
	hooks  *elements.Hooks
	spec   *api.Spec
	inputs []iso.File
	disks  []machine.Disk // the host's files lent read-only
	clouds *cloudImages
	steps  []*step // what shapes each checkpoint; nil without checkpoints
	// merged are the hooks of each phase, in the order they run.
	merged map[string][]hookFiles
}

// Prepare checks everything that can be checked without a VM, so that bad
// input fails at once, and packs the elements for the guest.
func Prepare(o Options) (*Plan, error) {
	// What the build prints names files of element trees and carries the
	// guest's text, which may be anyone's: shown, never obeyed.
	out, errOut := termsafe.NewWriter(o.Stdout), termsafe.NewWriter(o.Stderr)
	defer out.Flush()
	defer errOut.Flush()
	o.Stdout, o.Stderr = out, errOut
	if err := checkTypes(o.Types); err != nil {
		return nil, err
	}
	els, hooks, err := prepareElements(o)
	if err != nil {
		return nil, err
	}
	env, withheld, err := hookEnv(o.Environ, o.ExplicitEnv, o.NoHostEnv)
	if err != nil {
		return nil, err
	}
	if len(withheld) > 0 {
		fmt.Fprintf(o.Stdout, "dibvm: not passed to the hooks (host-specific or secret-shaped; pass one with --env NAME): %s\n", strings.Join(withheld, " "))
	}
	spec := &api.Spec{
		ImageName:   filepath.Base(o.Output),
		Elements:    elements.Names(els),
		Arch:        o.Arch,
		Env:         env,
		Types:       o.Types,
		Packages:    o.Packages,
		Trace:       o.Trace,
		RootLabel:   o.RootLabel,
		Break:       o.Break,
		ImageSizeGB: o.ImageSizeGB,
		ExtraSizeGB: o.ExtraSizeGB,
		JournalMiB:  o.JournalMiB,
		RootFSType:  o.FSType,

		MkfsOptions:     o.MkfsOptions,
		MaxOnlineResize: o.MaxOnlineResize,
	}
	if t := spec.RootFSType; t != "" && !slices.Contains(blockdevice.FSTypes, t) {
		return nil, fmt.Errorf("FS_TYPE=%s: the root filesystem can be %s", t, strings.Join(blockdevice.FSTypes, ", "))
	}
	if _, err := breakpoint.Parse(spec.Break); err != nil {
		return nil, err
	}
	if wantsDisk(o.Types) {
		if spec.Layout, err = layout(o, els); err != nil {
			return nil, err
		}
		spec.RootFSType = spec.Layout.Root().Type
		if root := spec.Layout.Root(); root.Label == "" && spec.RootLabel != "" {
			if err := blockdevice.CheckLabel(root.Type, spec.RootLabel); err != nil {
				return nil, fmt.Errorf("--root-label (or ROOT_LABEL, DIB_ROOT_LABEL): the root filesystem's %w", err)
			}
		}
		if spec.Arch == "arm64" && slices.Contains(spec.Elements, "bootloader") && !hasESP(spec.Layout) {
			return nil, fmt.Errorf("-a arm64: arm64 images boot by UEFI only, and this disk layout has no EFI system partition for bootloader's grub-efi-arm64: add the block-device-efi element (or give DIB_BLOCK_DEVICE_CONFIG a partition of type EF00 mounted at /boot/efi)")
		}
	}
	if spec.RootFSType == "" {
		spec.RootFSType = "ext4"
	}
	if spec.RootLabel == "" {
		// DIB's default, which is too long for XFS's 12 characters.
		spec.RootLabel = "cloudimg-rootfs"
		if spec.RootFSType == "xfs" {
			spec.RootLabel = "img-rootfs"
		}
	}
	carried, err := hostFiles(env, spec)
	if err != nil {
		return nil, err
	}
	lent, err := hostDisks(env, spec)
	if err != nil {
		return nil, err
	}
	clouds, err := prepareCloudImages(spec.Elements, env)
	if err != nil {
		return nil, err
	}
	inputs, err := inputFiles(spec, els, hooks)
	if err != nil {
		return nil, err
	}
	inputs = append(inputs, carried...)
	p := &Plan{o: o, out: out, hooks: hooks, spec: spec, inputs: inputs, disks: lent, clouds: clouds}
	if p.merged, err = mergedHooks(p.elementsTar()); err != nil {
		return nil, err
	}
	if o.Checkpoints != nil {
		if spec.Break != "" {
			fmt.Fprintln(o.Stdout, "dibvm: break= is set: this build neither resumes from checkpoints nor keeps any, since a shell may change the tree")
		} else if p.steps, err = p.stepInputs(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// stepInputs is what shapes each checkpoint of the plan, the host's
// files that reach the guest among it.
func (p *Plan) stepInputs() ([]*step, error) {
	var host []hostInput
	for _, f := range p.inputs {
		for k, name := range p.spec.HostFiles {
			if name == f.Name {
				sum := sha256.Sum256(f.Data)
				host = append(host, hostInput{"host file " + k, hex.EncodeToString(sum[:])})
			}
		}
	}
	for k, serial := range p.spec.HostDisks {
		for _, d := range p.disks {
			if d.Serial == serial {
				digest, _, err := sha256sum.File(d.Source)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
				host = append(host, hostInput{"host file " + k, digest})
			}
		}
	}
	return stepInputs(p.spec, host, p.elementsTar())
}

// elementsTar is the tar of the hooks and elements the guest gets.
func (p *Plan) elementsTar() []byte {
	for _, f := range p.inputs {
		if f.Name == api.ElementsTar {
			return f.Data
		}
	}
	return nil
}

// Elements are the build's elements, expanded.
func (p *Plan) Elements() []string { return p.spec.Elements }

// Run boots the helper VM as mo says and builds.
func (p *Plan) Run(ctx context.Context, mo machine.Options) error {
	o, spec, hooks := p.o, p.spec, p.hooks
	mo.Inputs = p.inputs
	proxy := gateway.Of(mo.Service)
	proxy.DownloadCache = o.ImageCache
	proxy.Offline = o.Offline
	if mo.Appliance != nil {
		var err error
		if proxy.Signed, err = p.clouds.sources(mo.Appliance.Keyrings); err != nil {
			return err
		}
	}
	mo.Service = &proxy
	mo.Disks = []machine.Disk{
		{Serial: api.ScratchSerial, Size: o.ScratchSize},
		{Serial: api.OutputSerial, Size: o.ScratchSize},
	}
	mo.Disks = append(mo.Disks, p.disks...)
	var keep *keeper
	if p.steps != nil {
		var err error
		if keep, err = startKeeper(ctx, o.Checkpoints, o.Stdout, spec, p.steps, o.ScratchSize, mo); err != nil {
			return err
		}
		// After QEMU has let go of the layers (deferred below).
		defer keep.close()
		mo.Disks[0] = machine.Disk{Serial: api.ScratchSerial, Layer: keep.active.Path}
		if mo.Inputs, err = withSpec(mo.Inputs, spec); err != nil {
			return err
		}
	}
	if spec.Resume != "" {
		phase, hook, _ := strings.Cut(spec.Resume, "/")
		p.event(progress.Event{Kind: progress.Resumed, Step: phase, Hook: hook})
	}
	p.event(progress.Event{Kind: progress.StepStart, Step: progress.Boot})
	m, err := machine.Start(ctx, mo)
	if err != nil {
		return err
	}
	defer m.Close()
	p.event(progress.Event{Kind: progress.StepEnd, Step: progress.Boot})
	// A signal or the timeout stops the VM, which ends the build.
	defer context.AfterFunc(ctx, func() { m.Close() })()

	fmt.Fprintf(o.Stdout, "Building elements: %s\n", strings.Join(spec.Elements, " "))
	// The build's stdin carries only the host's word: keep the tree at a
	// point or go on, after a point, a checkpoint or a breakpoint.
	words, reply := io.Pipe()
	defer reply.Close()
	// Once the build or the VM ends, nobody reads the words: the host's
	// next one must not wait for a reader (a guest that asks without
	// reading would otherwise hold the host for good).
	endWords := func() { words.CloseWithError(errors.New("the build has ended")) }
	defer context.AfterFunc(ctx, endWords)()
	breaks, _ := breakpoint.Parse(spec.Break) // checked in Prepare
	ctl := &control{
		breaks: breaks, types: o.Types, diskSize: o.ScratchSize,
		seq:   newSequence(p.merged, spec.Resume),
		wants: keep.wants,
		reply: func(word string) { io.WriteString(reply, word+"\n") },
		onBreak: func(b api.Break) {
			if o.Progress != nil {
				o.Progress.Pause()
				defer o.Progress.Resume()
			}
			p.breakShell(m, b)
		},
		onOffList: func(why string) {
			if keep != nil {
				keep.stop("the build left the hooks of its elements: " + why)
			}
		},
		onCheckpoint: func(cp *api.Checkpoint) {
			if keep != nil && keep.keep(m, cp) {
				p.event(progress.Event{Kind: progress.Kept, Step: cp.Phase, Hook: cp.Hook})
			}
		},
		onHook: func(h *api.Hook) {
			e := progress.Event{Kind: progress.HookStart, Step: h.Phase, Hook: h.Script, Element: elementOf(hooks, h.Phase, h.Script)}
			if h.Done {
				e.Kind, e.Status = progress.HookEnd, progress.OK
			}
			p.event(e)
		},
		onStep: func(st *api.Step) {
			e := progress.Event{Kind: progress.StepStart, Step: st.Name}
			if st.Done {
				e.Kind = progress.StepEnd
			}
			p.event(e)
		},
		stop: func() { m.Close() },
	}
	ctlR, ctlW := io.Pipe()
	ctlDone := make(chan struct{})
	go func() { defer close(ctlDone); ctl.read(ctlR) }()
	// Everything people read comes on the build's stderr; its stdout
	// carries only control messages.
	err = m.Client.Run(agentclient.Command{
		Line:  api.BuildLine,
		Stdin: words, Stdout: ctlW, Stderr: o.Stdout,
	})
	endWords()
	p.out.Flush()
	ctlW.Close()
	<-ctlDone
	if ctl.err != nil {
		return ctl.err
	}
	if err := m.Explain(err); err != nil {
		full := p.fullDisk(m)
		switch {
		case ctl.failure != nil:
			el := elementOf(hooks, ctl.failure.Phase, ctl.failure.Script)
			p.event(progress.Event{Kind: progress.HookEnd, Step: ctl.failure.Phase, Hook: ctl.failure.Script, Element: el, Status: progress.Failed})
			return &HookError{Failure: ctl.failure, Element: el, Hint: hookHint(ctl.failure, full)}
		case ctl.buildErr != "":
			err = errors.New(termsafe.String(ctl.buildErr))
		}
		if full != "" {
			return fmt.Errorf("the build failed in the helper VM: %w\n%s", err, full)
		}
		return fmt.Errorf("the build failed in the helper VM: %w", err)
	}
	if ctl.result == nil {
		return errors.New("the build ended without reporting its outputs")
	}
	// QEMU must let go of the output disk before it is read.
	m.Shutdown()
	p.event(progress.Event{Kind: progress.StepStart, Step: progress.Convert})
	if err := m.Fetch(api.OutputSerial, ctl.result.End()); err != nil {
		return err
	}
	written, err := writeOutputs(ctx, o, m.DiskPath(api.OutputSerial), ctl.result)
	if err != nil {
		return err
	}
	p.event(progress.Event{Kind: progress.StepEnd, Step: progress.Convert})
	for _, w := range written {
		p.event(progress.Event{Kind: progress.Output, Path: w.final, Size: w.size, SHA256: w.sums["sha256"]})
	}
	return nil
}

// event tells o.Progress, if any, of e.
func (p *Plan) event(e progress.Event) {
	if p.o.Progress != nil {
		p.o.Progress.Event(e)
	}
}

// fullDisk says, for a failed build, whether it filled the scratch or
// the output disk: the host sees that on the disks' sparse files, without
// taking the guest's word. ext4 leaves its inode tables unwritten on the
// scratch disk, so a full one is at least nine tenths written.
func (p *Plan) fullDisk(m *machine.Machine) string {
	for _, d := range []struct{ serial, what string }{
		{api.ScratchSerial, "scratch disk, which holds the tree, the downloads and the hooks' work files,"},
		{api.OutputSerial, "output disk, which holds the image and the tree's outputs,"},
	} {
		if n, ok := allocated(m.DiskPath(d.serial)); ok && n >= p.o.ScratchSize/10*9 {
			return fmt.Sprintf("The build's %s is full (%d MiB). Give it more room with --scratch-size, e.g. --scratch-size %dG.",
				d.what, p.o.ScratchSize>>20, max(2*p.o.ScratchSize>>30, 1))
		}
	}
	return ""
}

func wantsDisk(types []string) bool {
	for _, t := range types {
		if _, ok := diskformat.QemuImg(t); ok {
			return true
		}
	}
	return false
}
