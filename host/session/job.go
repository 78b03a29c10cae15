package session

import (
	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/host/termsafe"
)

// A Job is a build as a session runs it: what the helper VM is given,
// what the host holds the guest's build to, and where what it makes
// goes. It is all checked and packed before the session starts (host/plan
// makes one's parts), so that the session only runs it.
type Job struct {
	Spec *api.Spec
	// Inputs are the input disk's files: the spec, the elements tar,
	// and the host's files the build carries.
	Inputs []iso.File
	// HostDisks are the host's files lent to the build read-only.
	HostDisks []HostDisk
	// ImageLayer, for a build that opens an existing image
	// (api.Spec.Open), is the qcow2 layer over it that the guest
	// writes, as the disk api.ImageSerial.
	ImageLayer string
	// Hooks are the build's hooks, by phase and script: a hook's element
	// is named by them.
	Hooks *elements.Hooks
	// Order is the hooks of each phase, in the order they run: the
	// guest's build is held to it.
	Order map[string][]elements.MergedHook
	// SignedSources are the egress proxy's signed sources for the
	// build's cloud images, checked with the keyrings in the directory
	// keyrings (the helper appliance's) where the settings name none;
	// nil for none.
	SignedSources func(keyrings string) ([]egress.SignedSource, error)

	// Steps are what shapes each checkpoint; nil without checkpoints.
	// Store keeps the trees, within Limits.
	// Shared, when set, is a cache of checkpoints beyond the store.
	Steps  []*checkpoint.Step
	Store  *checkpoint.Store
	Limits checkpoint.Limits
	Shared checkpoint.Shared

	// ScratchSize is the size of the scratch disk and of the output
	// disk.
	ScratchSize int64
	// ImageCache is the host directory that keeps the build's downloads
	// that never change; Offline refreshes none of them.
	ImageCache string
	Offline    bool
	// Replay, when set, is the lock file the build is held to
	// (--packages-from; see egress.Options.Pins), ReplayName what the
	// user called it.
	Replay     *lockfile.Lock
	ReplayName string
	// Outputs say what the build writes, and where: their Types are
	// what the guest must put on the output disk, and no more.
	Outputs outputs.Options
	// Stdout is where the guest's text goes, made safe to show; it is
	// flushed once the build ends.
	Stdout *termsafe.Writer
	// Progress, when set, hears of the build's steps and hooks as they
	// start and end, and of what it writes.
	Progress *progress.Reporter
	// Term is the user's terminal type ($TERM), which a break shell's
	// pty in the guest is given when dibvm runs on a terminal.
	Term string
	// Provenance, when set, is what the build's provenance statement
	// says of its inputs (see host/provenance), asked for once the
	// outputs are in place; Version and Commit are the running dibvm's.
	Provenance      func() (provenance.Build, error)
	Version, Commit string
	// Sign, when set, signs the statement (--sign).
	Sign *sshsign.Signer
}

// A HostDisk is a file of the host lent to the build as a read-only
// disk with this serial.
type HostDisk struct {
	Serial, Source string
}
