package api

import (
	"encoding/json"
	"fmt"
)

// Spec is what the host tells the guest about one image build: the
// elements, the environment and the outputs. The host writes it as
// SpecFile on the input disk, beside ElementsTar.
type Spec struct {
	ImageName string   `json:"image_name"` // the -o name, without directory
	Elements  []string `json:"elements"`   // expanded, sorted
	Arch      string   `json:"arch"`       // Debian architecture name
	// Env is what of the caller's environment every hook gets: DIB_*
	// settings, which replace the build's defaults, and the caller's
	// other variables, which do not replace the build's own.
	Env map[string]string `json:"env"`
	// HostPaths are the host's files and directories lent to the build
	// (see host/hostpath): the names of tars on the input disk, each of
	// which the guest unpacks into LentDir/<name> before the first hook,
	// read-only. Env already sets each lending variable to its copies
	// there.
	HostPaths []string `json:"host_paths,omitempty"`
	// HostDisks are the files of the host that settings in Env name and
	// that are too large to carry (DIB_LOCAL_IMAGE): variable → the
	// serial of the read-only disk they are lent as. The guest sets each
	// variable to the disk's device.
	HostDisks map[string]string `json:"host_disks,omitempty"`
	// HostDiskNames are the base names of those files, by variable: the
	// guest sets the variable to a link of that name to the disk's
	// device (in LentDisksDir), since DIB's hooks take names from it
	// (DIB_LOCAL_IMAGE's basename names the extracted tree; a .xz suffix
	// says how to read it).
	HostDiskNames map[string]string `json:"host_disk_names,omitempty"`
	// HostLoopback are addresses of the host's loopback (127.0.0.1:3142,
	// [::1]:8080) that the caller's settings or --allow-net name: the
	// guest listens on each of them itself and carries every connection
	// through the egress proxy's CONNECT to the same address on the
	// host, so that such a URL means the host's service, as in DIB,
	// whatever a tool does with proxies. The proxy's policy decides.
	HostLoopback []string `json:"host_loopback,omitempty"`
	// Types are the output types the guest must produce. A tar output is
	// written, as a tar stream, from the start of the output disk.
	Types []string `json:"types"`
	// Packages are the -p packages, installed after install.d.
	Packages []string `json:"packages,omitempty"`
	// Trace is -x: run hooks with tracing.
	Trace bool `json:"trace,omitempty"`
	// Break is DIB's break= setting, checked by the host.
	Break string `json:"break,omitempty"`
	// Layout is the disk to build, when a disk image type is asked for.
	Layout *Layout `json:"layout,omitempty"`
	// RootLabel labels the root filesystem when its config names none.
	RootLabel string `json:"root_label,omitempty"`
	// ImageSizeGB (--image-size) fixes the image size; ExtraSizeGB
	// (--image-extra-size) is added to the tree's size instead of DIB's
	// usual margin. Both in GB, as DIB documents them.
	ImageSizeGB float64 `json:"image_size_gb,omitempty"`
	ExtraSizeGB float64 `json:"extra_size_gb,omitempty"`
	// JournalMiB is an ext4 root's journal (--mkfs-journal-size); 0 is
	// DIB's 64 MiB.
	JournalMiB int `json:"journal_mib,omitempty"`
	// RootFSType is the root filesystem's type, exported to hooks as
	// DIB_ROOT_FSTYPE.
	RootFSType string `json:"root_fs_type,omitempty"`
	// MkfsOptions (--mkfs-options, else MKFS_OPTS) go to the root
	// filesystem's mkfs; MaxOnlineResize (--max-online-resize) is the
	// most blocks an ext root may later grow to online (mkfs -E resize=).
	MkfsOptions     string `json:"mkfs_options,omitempty"`
	MaxOnlineResize int64  `json:"max_online_resize,omitempty"`
	// SourceDateEpoch, when set, makes the build reproducible: hooks get
	// it as SOURCE_DATE_EPOCH, no time in the tree is later than it,
	// what tools leave that differs from run to run goes, and the
	// filesystems and outputs are made so that the same tree gives the
	// same bytes (see guestagent/reproducible). The layout then carries
	// the seeded identifiers: Layout.DiskID, Partition.UUID and
	// Filesystem.UUID.
	SourceDateEpoch *int64 `json:"source_date_epoch,omitempty"`

	// Open says the build's tree is an existing disk image's root (dibvm
	// customize): the disk ImageSerial, its filesystems mounted as
	// extract-image finds them. root.d and block-device.d do not run, no
	// disk image or tree output is made, and what the hooks change goes
	// back into the image.
	Open bool `json:"open,omitempty"`
	// Command, with Open, is a shell command line run as root in the
	// image's root after finalise.d, before cleanup.d (StepCommand).
	Command string `json:"command,omitempty"`

	// Checkpoints are the phases (of CheckpointPhases) where the build
	// stops at each Point, after each hook but the last and at the end,
	// for the host to say whether it keeps the scratch disk there.
	Checkpoints []string `json:"checkpoints,omitempty"`
	// Resume is where the scratch disk, as the host attached it, was
	// kept: after a phase, or after one of its hooks ("install.d/10-x",
	// see CheckpointName). The build skips everything up to there and
	// goes on. Empty for a build from nothing.
	Resume string `json:"resume,omitempty"`
}

// CheckpointName names the point of a build a checkpoint was kept at:
// the phase, for the end of it, or "phase/hook" after one of its hooks
// (hook names never hold a slash).
func CheckpointName(phase, hook string) string {
	if hook == "" {
		return phase
	}
	return phase + "/" + hook
}

// CheckpointPhases are the phases after which a build can be kept, in
// order. Each stands for the phases since the one before it: pre-install.d
// for extra-data.d too, install.d for the -p packages installed after
// it. After post-install.d the tree goes into the image, and nothing is
// worth keeping.
var CheckpointPhases = []string{"root.d", "pre-install.d", "install.d", "post-install.d"}

// ParseSpec decodes a spec.
func ParseSpec(data []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", SpecFile, err)
	}
	if s.ImageName == "" || len(s.Elements) == 0 {
		return nil, fmt.Errorf("%s: image_name and elements are required", SpecFile)
	}
	return &s, nil
}

// Result is the build's last control message on success: what it wrote
// to the output disk.
type Result struct {
	// TarSize is the length of the tar stream at the start of the output
	// disk, when a tar output was asked for.
	TarSize int64 `json:"tar_size,omitempty"`
	// ImageSize is the length of the raw disk image at the start of the
	// output disk, when a disk image was asked for. A tar then follows
	// the image, starting at TarOffset.
	ImageSize int64 `json:"image_size,omitempty"`
	TarOffset int64 `json:"tar_offset,omitempty"`
	// SquashfsSize is the length of the squashfs image, when one was
	// asked for, at SquashfsOffset, after everything else.
	SquashfsOffset int64 `json:"squashfs_offset,omitempty"`
	SquashfsSize   int64 `json:"squashfs_size,omitempty"`
	// ManifestsSize is the length of a tar of the image's manifests,
	// at ManifestsOffset, after everything else.
	ManifestsOffset int64 `json:"manifests_offset,omitempty"`
	ManifestsSize   int64 `json:"manifests_size,omitempty"`
	// PackagesSize is the length of the list of the packages installed
	// in the image (see FormatPackages), at PackagesOffset, after the
	// manifests; 0 when the image has no package database.
	PackagesOffset int64 `json:"packages_offset,omitempty"`
	PackagesSize   int64 `json:"packages_size,omitempty"`
	// Emitted are the files hooks wrote beside the image, after
	// everything else, one after another.
	Emitted []EmittedFile `json:"emitted,omitempty"`
}

// End is where the last of r's outputs ends on the output disk: the host
// needs the disk no further.
func (r *Result) End() int64 {
	end := max(r.ImageSize, r.TarOffset+r.TarSize, r.SquashfsOffset+r.SquashfsSize, r.ManifestsOffset+r.ManifestsSize, r.PackagesOffset+r.PackagesSize)
	for _, f := range r.Emitted {
		end = max(end, f.Offset+f.Size)
	}
	return end
}

// ManifestsEnv names, for hooks, the directory whose files the host puts
// at DIB_MANIFEST_SAVE_DIR (the manifests element's cleanup.d fills it).
const ManifestsEnv = "DIBVM_MANIFESTS_DIR"

// The output types of Spec.Types that the guest acts on: the host asks
// for them by these names and the guest writes what each needs (see
// Result). The host makes each disk image type from the raw image the
// guest writes when Spec.Layout is set.
const (
	TypeTar      = "tar"      // a tar of the tree
	TypeTgz      = "tgz"      // the tar, which the host gzips
	TypeDocker   = "docker"   // the tar, which the host passes on for docker import
	TypeSquashfs = "squashfs" // a squashfs of the tree
)

// TreeArchive reports whether the types need a tar of the tree: TypeTar
// itself, and TypeTgz and TypeDocker, which the host makes from it.
func TreeArchive(types []string) bool {
	for _, t := range types {
		if t == TypeTar || t == TypeTgz || t == TypeDocker {
			return true
		}
	}
	return false
}
