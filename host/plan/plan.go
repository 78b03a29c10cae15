// Package plan turns a disk-image-create invocation into the plan of a
// build: everything checked that can be checked without a VM (elements,
// hooks, settings, disk layout, the host's files), the input disk's
// files packed, and the checkpoints' keys. It runs nothing: host/cli
// makes a plan a host/session job, which runs in the helper VM.
package plan

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/hostpath"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/sshsign"
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
	// what hookenv.Filter withholds).
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
	// Egress is what the helper VM may reach through the egress proxy
	// (--allow-net, --allow-only); nil when it has no network.
	Egress *egress.Policy
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
	// hooks whatever their names (the caller resolves a NAME to its
	// value: see hookenv.Resolve); NoHostEnv (--no-host-env) passes only
	// DIB_* and break of the caller's own (see hookenv.Filter).
	ExplicitEnv []string
	NoHostEnv   bool
	// PassEnv is how the command passes a withheld variable, for the
	// notice that names them: "--env NAME" unless set.
	PassEnv string
	// HostPaths are the variables --host-path (or DIBVM_HOST_PATH)
	// names, as NAME=VALUE, or NAME where the variable is set nowhere
	// (the caller resolves them as --env's): each value is a host path,
	// which the build borrows, whatever hookenv would withhold.
	HostPaths []string
	// ImageCache is --image-cache: the host directory that keeps the
	// build's downloads that never change (see host/egress.Cache).
	ImageCache string
	// MkfsOptions and MaxOnlineResize are --mkfs-options and
	// --max-online-resize, for the root filesystem.
	MkfsOptions     string
	MaxOnlineResize int64
	// QemuImgOptions is --qemu-img-options: qemu-img convert's -o.
	QemuImgOptions string
	// HelperTools are the tool layers --helper-tools asks the helper
	// for, whatever the elements (the caller checks the names).
	HelperTools []string
	// Reproducible, when set, makes the build's outputs the same bytes
	// for the same inputs.
	Reproducible *Reproducible
	// PackagesFrom, when set, is the lock file the build replays
	// (--packages-from): it gets the files it names and no others.
	PackagesFrom *PackagesFrom
	// Sign, when set, signs the build's provenance statement (--sign).
	Sign *sshsign.Signer
	// Expect, when set, checks the plan before the VM boots: dibvm
	// rebuild's, that the elements are the statement's.
	Expect func(*Plan) error

	// Open is the disk image the build opens as its tree, a qcow2 layer
	// over an existing image (dibvm customize; see api.Spec.Open), and
	// Command a shell command line it runs in the image's root after
	// finalise.d. Types are then empty: the image is what changes.
	Open    string
	Command string

	ScratchSize int64
	// ScratchSizeGiven says ScratchSize is --scratch-size, which the plan
	// never raises; dibvm's default grows to hold the layout's fixed
	// partitions.
	ScratchSizeGiven bool
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

// Plan is a build whose inputs have been checked and packed: what the
// helper VM is given, and what the host holds the build to.
type Plan struct {
	// Options are the invocation's, their Stdout and Stderr through
	// termsafe: what the build prints names files of element trees and
	// carries the guest's text, which may be anyone's.
	Options Options
	// Stdout is Options.Stdout: the guest's output goes there, flushed
	// once the build ends.
	Stdout *termsafe.Writer
	Spec   *api.Spec
	// Inputs are the input disk's files: the spec, the elements tar,
	// and the host's files the build carries.
	Inputs []iso.File
	// HostDisks are the host's files lent to the build read-only.
	HostDisks []HostDisk
	// Lender holds the host's files and directories the build borrows
	// (see lendHostPaths): what it holds when pack calls packLoans goes
	// on the input disk.
	Lender *hostpath.Lender
	Hooks  *elements.Hooks
	// Order is the hooks of each phase, in the order they run.
	Order map[string][]elements.MergedHook
	// Steps are what shapes each checkpoint; nil without checkpoints.
	Steps []*checkpoint.Step
	// HelperTools are the tool layers the helper VM needs for this
	// build, by name (see helperTools).
	HelperTools []string
	// NotReproducible names the parts of a reproducible build that are
	// not (see seedLayout).
	NotReproducible []string

	clouds *cloudImages
}

// Prepare checks everything that can be checked without a VM, so that bad
// input fails at once, and packs the elements for the guest.
func Prepare(o Options) (*Plan, error) {
	out, errOut := termsafe.NewWriter(o.Stdout), termsafe.NewWriter(o.Stderr)
	defer out.Flush()
	defer errOut.Flush()
	o.Stdout, o.Stderr = out, errOut
	switch {
	case o.Open != "" && len(o.Types) > 0:
		return nil, fmt.Errorf("-t %s: a build that opens an image changes it, and writes no outputs of its own", strings.Join(o.Types, ","))
	case o.Open == "":
		if err := checkTypes(o.Types); err != nil {
			return nil, err
		}
	}
	els, hooks, err := prepareElements(o)
	if err != nil {
		return nil, err
	}
	if o.Open != "" {
		noteNotOpened(o.Stderr, hooks)
	}
	spec, err := newSpec(o, els)
	if err != nil {
		return nil, err
	}
	if err := fitScratch(&o, spec.Layout); err != nil {
		return nil, err
	}
	p := &Plan{Options: o, Stdout: out, Spec: spec, Hooks: hooks, Lender: hostpath.NewLender(),
		HelperTools: helperTools(spec.Elements, o.HelperTools)}
	if err := p.pack(els); err != nil {
		return nil, err
	}
	if err := p.reproduce(); err != nil {
		return nil, err
	}
	if err := p.planCheckpoints(); err != nil {
		return nil, err
	}
	return p, nil
}

// newSpec is the build spec of o: the hooks' environment, the settings,
// and the disk layout, each checked.
func newSpec(o Options, els []*elements.Element) (*api.Spec, error) {
	env, withheld, err := hookenv.Filter(o.Environ, o.ExplicitEnv, o.NoHostEnv)
	if err != nil {
		return nil, err
	}
	withheld = slices.DeleteFunc(withheld, func(k string) bool {
		return slices.ContainsFunc(o.HostPaths, func(kv string) bool { return strings.Split(kv, "=")[0] == k })
	})
	if len(withheld) > 0 {
		pass := cmp.Or(o.PassEnv, "--env NAME")
		fmt.Fprintf(o.Stdout, "dibvm: not passed to the hooks (host-specific or secret-shaped; pass one with %s): %s\n", pass, strings.Join(withheld, " "))
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

		Open:    o.Open != "",
		Command: o.Command,
	}
	if r := o.Reproducible; r != nil {
		spec.SourceDateEpoch = &r.Epoch
	}
	if o.Egress != nil {
		if spec.HostLoopback, err = hostLoopback(*o.Egress, env); err != nil {
			return nil, err
		}
	}
	if t := spec.RootFSType; t != "" && !slices.Contains(blockdevice.FSTypes, t) {
		return nil, fmt.Errorf("FS_TYPE=%s: the root filesystem can be %s", t, strings.Join(blockdevice.FSTypes, ", "))
	}
	if _, err := breakpoint.Parse(spec.Break); err != nil {
		return nil, err
	}
	if diskformat.WantsDisk(o.Types) {
		if err := diskSettings(spec, o, els); err != nil {
			return nil, err
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
	return spec, nil
}

// diskSettings puts the disk layout into spec, with the root
// filesystem's type, and checks the root label and the boot partition
// against it.
func diskSettings(spec *api.Spec, o Options, els []*elements.Element) error {
	var err error
	if spec.Layout, err = layout(o, els); err != nil {
		return err
	}
	spec.RootFSType = spec.Layout.Root().Type
	if root := spec.Layout.Root(); root.Label != "" {
		// The layout's own label wins, and is DIB_ROOT_LABEL, as DIB's
		// getval root-label reads it back.
		spec.RootLabel = root.Label
	} else if spec.RootLabel != "" {
		if err := blockdevice.CheckLabel(root.Type, spec.RootLabel); err != nil {
			return fmt.Errorf("--root-label (or ROOT_LABEL, DIB_ROOT_LABEL): the root filesystem's %w", err)
		}
	}
	if spec.Arch == "arm64" && slices.Contains(spec.Elements, "bootloader") && !hasESP(spec.Layout) {
		return fmt.Errorf("-a arm64: arm64 images boot by UEFI only, and this disk layout has no EFI system partition for bootloader's grub-efi-arm64: add the block-device-efi element (or give DIB_BLOCK_DEVICE_CONFIG a partition of type EF00 mounted at /boot/efi)")
	}
	return nil
}

// pack reads the host's files the settings name and packs the input
// disk's files, and reads back from the elements tar the order the
// hooks run in.
func (p *Plan) pack(els []*elements.Element) error {
	env := p.Spec.Env
	var err error
	if p.HostDisks, err = hostDisks(env, p.Spec); err != nil {
		return err
	}
	if p.clouds, err = prepareCloudImages(p.Spec.Elements, env); err != nil {
		return err
	}
	if err := p.lendHostPaths(); err != nil {
		return err
	}
	if err := p.lendSources(els); err != nil {
		return err
	}
	// Last of what reads the host's paths in env: from here on, a lending
	// variable holds the guest's copy.
	lent := p.packLoans()
	inputs, err := inputFiles(p.Spec, els, p.Hooks)
	if err != nil {
		return err
	}
	p.Inputs = append(inputs, lent...)
	p.Order, err = elements.ReadMergedHooks(bytes.NewReader(p.elementsTar()))
	return err
}

// Elements are the build's elements, expanded.
func (p *Plan) Elements() []string { return p.Spec.Elements }

// SignedSources are the egress proxy's signed sources for the build's
// cloud images (see egress.SignedSource), checked with the keyrings in
// the directory keyrings (the helper appliance's) where the settings
// name none.
func (p *Plan) SignedSources(keyrings string) ([]egress.SignedSource, error) {
	return p.clouds.sources(keyrings)
}

// elementsTar is the tar of the hooks and elements the guest gets.
func (p *Plan) elementsTar() []byte {
	for _, f := range p.Inputs {
		if f.Name == api.ElementsTar {
			return f.Data
		}
	}
	return nil
}
