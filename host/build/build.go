// Package build runs `disk-image-create` on the host side: it expands and
// checks the elements, packs them for the guest, boots the helper VM with
// a scratch disk and an output disk, runs the guest's build, and moves
// the result into place only when it is complete.
package build

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/shellquote"
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

// hasESP says whether the layout has an EFI system partition.
func hasESP(l *api.Layout) bool {
	for _, p := range l.Partitions {
		if strings.EqualFold(p.Type, "EF00") || strings.EqualFold(p.Type, "0xef") || (p.FS != nil && p.FS.MountPoint == "/boot/efi") {
			return true
		}
	}
	return false
}

// Elements are the build's elements, expanded.
func (p *Plan) Elements() []string { return p.spec.Elements }

// Run boots the helper VM as mo says and builds.
func (p *Plan) Run(ctx context.Context, mo machine.Options) error {
	o, spec, hooks := p.o, p.spec, p.hooks
	mo.Inputs = p.inputs
	mo.DownloadCache = o.ImageCache
	mo.Offline = o.Offline
	if mo.Appliance != nil {
		var err error
		if mo.Signed, err = p.clouds.sources(mo.Appliance.Keyrings); err != nil {
			return err
		}
	}
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

// layout reads the block device configuration: DIB_BLOCK_DEVICE_CONFIG
// (YAML, or file:// and a path), else block-device-<arch>.yaml or
// block-device-default.yaml of the elements.
func layout(o Options, els []*elements.Element) (*api.Layout, error) {
	var data []byte
	var where string
	if cfg := o.BlockDeviceConfig; cfg != "" {
		where = "DIB_BLOCK_DEVICE_CONFIG"
		data = []byte(cfg)
		if path, ok := strings.CutPrefix(cfg, "file://"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("DIB_BLOCK_DEVICE_CONFIG: %w", err)
			}
			data, where = b, path
		}
	} else {
	search:
		for _, name := range []string{"block-device-" + o.Arch + ".yaml", "block-device-default.yaml"} {
			for _, e := range els {
				if b, err := fs.ReadFile(e.FS, name); err == nil {
					data, where = b, "element "+e.Name+": "+name
					break search
				}
			}
		}
		if data == nil {
			return nil, errors.New("a disk image needs a block device layout: add vm (which brings block-device-mbr) or a block-device-* element, or set DIB_BLOCK_DEVICE_CONFIG")
		}
	}
	for _, k := range blockdevice.UnknownKeys(data) {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s: %s is no block device setting, and is ignored (as DIB does): is it misspelt?\n", where, k)
	}
	l, err := blockdevice.Parse(data, o.FSType)
	if err != nil {
		// Each problem on its own line, each saying where it is.
		return nil, fmt.Errorf("%s: %s", where, strings.ReplaceAll(err.Error(), "\n", "\n"+where+": "))
	}
	if o.ImageSizeGB > 0 {
		// The guest's own sizing: GiB, in 64 KiB steps.
		size := (int64(o.ImageSizeGB*(1<<30)) + 64<<10 - 1) / (64 << 10) * (64 << 10)
		if _, err := blockdevice.Place(l, size); err != nil {
			return nil, fmt.Errorf("%s with --image-size %g (or DIB_IMAGE_SIZE): %w", where, o.ImageSizeGB, err)
		}
	}
	return l, nil
}

func checkTypes(types []string) error {
	if len(types) == 0 {
		return errors.New("-t: no output type given")
	}
	for _, t := range types {
		ok := false
		for _, s := range Supported {
			ok = ok || t == s
		}
		if !ok {
			return fmt.Errorf("-t %s: this dibvm cannot write that type yet; it writes: %s", t, strings.Join(Supported, ", "))
		}
	}
	return nil
}

// prepareElements expands, merges and checks the elements on the host,
// where errors are cheap, before any VM boots.
func prepareElements(o Options) ([]*elements.Element, *elements.Hooks, error) {
	lib, err := elements.NewLibrary(o.ElementsPath, elements.Builtin())
	if err != nil {
		return nil, nil, err
	}
	els, err := elements.Expand(lib, elements.CommandLine(o.Elements, o.SkipBase, o.Arch))
	for _, w := range lib.Warnings() {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s\n", w)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := checkSize(els); err != nil {
		return nil, nil, err
	}
	hooks, warnings, err := elements.BuildHooks(els, o.Environ)
	if err != nil {
		return nil, nil, err
	}
	if err := checkInstallType(hooks, o.InstallType); err != nil {
		return nil, nil, err
	}
	w, err := CheckElements(els, hooks, func(name string) (string, bool) { return envvar.Lookup(o.Environ, name) }, o.Arch)
	for _, w := range append(warnings, w...) {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s\n", w)
	}
	if err != nil {
		return nil, nil, err
	}
	return els, hooks, nil
}

// maxElementBytes bounds the elements' files that go onto the input
// disk, which is made in memory: an element tree is not a way to carry
// large data (or a huge sparse file) into the VM, nor to exhaust the
// host's memory.
const maxElementBytes = 1 << 30

func checkSize(els []*elements.Element) error {
	var total int64
	var biggest *elements.Element
	for _, e := range els {
		total += e.Size
		if biggest == nil || e.Size > biggest.Size {
			biggest = e
		}
	}
	if total > maxElementBytes {
		return fmt.Errorf("the elements' files come to %d MiB, more than the %d MiB dibvm carries into the helper VM (the largest is element %s at %s, %d MiB): fetch large data in a hook instead, e.g. with cache-url",
			total>>20, maxElementBytes>>20, biggest.Name, biggest.Path, biggest.Size>>20)
	}
	return nil
}

// maxInputTar bounds the tar of the elements as written: the hooks are
// in it twice (merged, and in their elements), and links that install
// types lift into install.d travel as the files they lead to, so it can
// outgrow the elements' own size.
const maxInputTar = 2 * maxElementBytes

func inputFiles(spec *api.Spec, els []*elements.Element, hooks *elements.Hooks) ([]iso.File, error) {
	tarball := &cappedBuffer{max: maxInputTar}
	if err := elements.WriteTar(tarball, els, hooks); err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return []iso.File{
		{Name: api.SpecFile, Data: js},
		{Name: api.ElementsTar, Data: tarball.buf.Bytes()},
	}, nil
}

// withSpec is inputs with the spec file written anew from spec.
func withSpec(inputs []iso.File, spec *api.Spec) ([]iso.File, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(inputs)
	for i := range out {
		if out[i].Name == api.SpecFile {
			out[i].Data = js
		}
	}
	return out, nil
}

// HookError is a failed hook, with the element it belongs to.
type HookError struct {
	Failure *api.Failure
	Element string
	Hint    string // what the host saw that explains the failure, if anything
}

func (e *HookError) Error() string {
	var b strings.Builder
	how := fmt.Sprintf("exit status %d", e.Failure.Status)
	if e.Failure.Signal != "" {
		how = e.Failure.Signal
	}
	fmt.Fprintf(&b, "the build failed in a hook\n  element: %s\n  phase:   %s\n  script:  %s\n  status:  %s\n",
		e.Element, e.Failure.Phase, e.Failure.Script, termsafe.String(how))
	if len(e.Failure.Tail) > 0 {
		b.WriteString("  last lines of its output:\n")
		for _, l := range e.Failure.Tail {
			b.WriteString("    " + termsafe.String(api.ShortenTailLine(l)) + "\n")
		}
	}
	if e.Hint != "" {
		b.WriteString(e.Hint + "\n")
	}
	b.WriteString("Nothing was written to the output path. Fix the hook, or rerun with break=after-error to get a shell where it failed.")
	return b.String()
}

// hookHint adds to what the host saw (disk) what a failed hook's own last
// lines explain.
func hookHint(f *api.Failure, disk string) string {
	for _, l := range f.Tail {
		// glibc refuses to start on a CPU below the level it was built
		// for; the helper's CPU under TCG is x86-64-v2 unless asked.
		if strings.Contains(l, "CPU ISA level is lower than required") {
			return strings.TrimLeft(disk+"\n", "\n") + "The image's binaries need a newer x86-64 level than the helper VM's CPU (x86-64-v2 under TCG): build again with --cpu-model max."
		}
	}
	return disk
}

func elementOf(h *elements.Hooks, phase, script string) string {
	if hook, ok := h.Files[phase+"/"+script]; ok {
		return hook.Element.Name
	}
	return "(none: the build's own step)"
}

// writeOutputs takes every output off the output disk into a temporary
// file beside its final path and, only when all are complete, renames
// them into place, moving existing files aside first as DIB does. Disk
// images are converted with qemu-img from raw only: the host never
// interprets what the guest made. It returns the outputs written, each
// with its size and sums (sha256 always).
func writeOutputs(ctx context.Context, o Options, disk string, r *api.Result) ([]*stagedFile, error) {
	var staged []*stagedFile
	defer func() {
		for _, s := range staged {
			os.RemoveAll(s.tmp)
		}
	}()
	for _, t := range o.Types {
		name, fill := treeOutput(o, t, disk, r)
		if fill == nil {
			continue
		}
		s, err := stage(name, fill)
		if err != nil {
			return nil, err
		}
		staged = append(staged, s)
	}
	// Everything after the raw image is read before the disk is cut to it.
	var manifests *stagedFile
	if r.ManifestsSize > 0 {
		dir := o.ManifestSaveDir
		if dir == "" {
			dir = o.Output + ".d"
		}
		var err error
		if manifests, err = stageManifests(filepath.Clean(dir), disk, r.ManifestsOffset, r.ManifestsSize); err != nil {
			return nil, err
		}
		defer os.RemoveAll(manifests.tmp) // gone once committed
	}
	if r.ImageSize > 0 {
		// The raw image is the disk's first ImageSize bytes.
		if err := os.Truncate(disk, r.ImageSize); err != nil {
			return nil, err
		}
	}
	for _, t := range o.Types {
		format, ok := diskformat.QemuImg(t)
		if !ok {
			continue
		}
		if r.ImageSize == 0 {
			return nil, fmt.Errorf("-t %s: the build made no disk image", t)
		}
		s, err := stage(o.Output+"."+t, func(tmp *os.File) error {
			return convert(ctx, disk, tmp.Name(), format, !o.Uncompressed, o.QemuImgOptions)
		})
		if err != nil {
			return nil, err
		}
		staged = append(staged, s)
	}
	outputs := slices.Clone(staged)
	sums, err := stageChecksums(outputs, o.Checksums)
	if err != nil {
		return nil, err
	}
	staged = append(staged, sums...)
	if manifests != nil {
		staged = append(staged, manifests) // not checksummed: a directory
	}
	for _, s := range staged {
		if err := s.commit(); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Stdout, "Image file %s created...\n", s.final)
	}
	if slices.Contains(o.Types, api.TypeDocker) {
		// No daemon is needed to build; this is how the tarball gets to one.
		target := o.DockerTarget
		if target == "" {
			target = filepath.Base(o.Output)
		}
		fmt.Fprintf(o.Stdout, "Import it into Docker with: %s\n", shellquote.Join("docker", "import", o.Output+".docker.tar", target))
	}
	staged = nil
	return outputs, nil
}

// stageChecksums reads each output once for its sums, sha256 always and
// those of kinds (md5, sha256), and stages a file of each of kinds for
// each output, in the format md5sum and sha256sum write and check
// ("<sum>  <name>").
func stageChecksums(outputs []*stagedFile, kinds []string) ([]*stagedFile, error) {
	var out []*stagedFile
	for _, f := range outputs {
		hashes := map[string]hash.Hash{"sha256": sha256.New()}
		for _, k := range kinds {
			if k == "md5" {
				hashes[k] = md5.New()
			}
		}
		var ws []io.Writer
		for _, h := range hashes {
			ws = append(ws, h)
		}
		src, err := os.Open(f.tmp)
		if err != nil {
			return out, err
		}
		f.size, err = io.Copy(io.MultiWriter(ws...), src)
		src.Close()
		if err != nil {
			return out, err
		}
		f.sums = map[string]string{}
		for k, h := range hashes {
			f.sums[k] = hex.EncodeToString(h.Sum(nil))
		}
		for _, k := range kinds {
			line := f.sums[k] + "  " + filepath.Base(f.final) + "\n"
			sf, err := stage(f.final+"."+k, func(tmp *os.File) error {
				_, err := io.WriteString(tmp, line)
				return err
			})
			if err != nil {
				return out, err
			}
			out = append(out, sf)
		}
	}
	return out, nil
}

// treeOutput is the file name of an output type made from the tree, and
// how to fill it from the output disk; nil for the disk image types.
// tgz and docker are the guest's tar of the tree, gzipped or as it is:
// bytes the host passes on, never a filesystem it reads.
func treeOutput(o Options, t, disk string, r *api.Result) (string, func(*os.File) error) {
	tar := func(tmp *os.File) error { return copySection(tmp, disk, r.TarOffset, r.TarSize) }
	switch t {
	case api.TypeTar:
		return o.Output + ".tar", tar
	case api.TypeDocker:
		return o.Output + ".docker.tar", tar
	case api.TypeTgz:
		return o.Output + ".tgz", func(tmp *os.File) error {
			zw := gzip.NewWriter(tmp)
			if err := copySection(zw, disk, r.TarOffset, r.TarSize); err != nil {
				return err
			}
			return zw.Close()
		}
	case api.TypeSquashfs:
		return o.Output + ".squash", func(tmp *os.File) error {
			return copySection(tmp, disk, r.SquashfsOffset, r.SquashfsSize)
		}
	}
	return "", nil
}

// copySection copies length bytes at offset of the output disk to w.
func copySection(w io.Writer, disk string, offset, length int64) error {
	src, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := io.Copy(w, io.NewSectionReader(src, offset, length))
	if err == nil && n != length {
		err = fmt.Errorf("the output disk ended %d bytes short", length-n)
	}
	return err
}

// convert writes the raw image disk to dst as format with qemu-img.
func convert(ctx context.Context, disk, dst, format string, compress bool, options string) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img not found: it comes with QEMU (Debian and Ubuntu: apt-get install qemu-utils)")
	}
	args := []string{"convert", "-f", "raw", "-O", format}
	if format == "qcow2" && compress {
		// -W lets qemu-img compress clusters on every core and write each
		// as it is ready, rather than one at a time in the image's order:
		// a 1.2 GiB image took 11.6 s instead of 20.6 s on two cores. Only
		// the order of clusters inside the file changes, which a qcow2
		// reader never sees.
		args = append(args, "-c", "-W")
	}
	if options != "" && format == "qcow2" {
		args = append(args, "-o", options)
	}
	args = append(args, disk, dst)
	out, err := exec.CommandContext(ctx, qemuImg, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stagedFile is an output written beside its final path, not yet renamed.
type stagedFile struct {
	final, tmp string
	size       int64
	sums       map[string]string // by kind (md5, sha256), once read
}

// stage writes a file through fill into a temporary file beside final.
func stage(final string, fill func(*os.File) error) (*stagedFile, error) {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(final)+".partial-*")
	if err != nil {
		return nil, err
	}
	s := &stagedFile{final: final, tmp: tmp.Name()}
	err = func() error {
		defer tmp.Close()
		// CreateTemp makes the file 0600; an image is as readable as any file.
		if err := tmp.Chmod(0o644); err != nil {
			return err
		}
		if err := fill(tmp); err != nil {
			return err
		}
		return tmp.Sync()
	}()
	if err != nil {
		os.Remove(s.tmp)
		return nil, fmt.Errorf("write %s: %w", final, err)
	}
	return s, nil
}

// commit moves an existing file at final aside and renames the staged
// file into place.
func (s *stagedFile) commit() error {
	if _, err := os.Lstat(s.final); err == nil {
		old := s.final + "-" + time.Now().Format("2006.01.02-15.04.05")
		if err := os.Rename(s.final, old); err != nil {
			return err
		}
	}
	return os.Rename(s.tmp, s.final)
}

// cappedBuffer is a bytes.Buffer that refuses to grow beyond max.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, fmt.Errorf("the elements make an input of more than %d MiB for the helper VM: fetch large data in a hook instead, e.g. with cache-url", c.max>>20)
	}
	return c.buf.Write(p)
}
