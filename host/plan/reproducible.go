package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/hookenv"
	"github.com/dibvm/dibvm/host/lockfile"
)

// PackagesFrom is a lock file a build replays, and the name the user
// gave it.
type PackagesFrom struct {
	Name   string
	SHA256 string // of the file
	Lock   *lockfile.Lock
}

// Reproducible asks for a build whose outputs are the same bytes
// whenever its inputs are the same (--reproducible, SOURCE_DATE_EPOCH).
type Reproducible struct {
	// Epoch is SOURCE_DATE_EPOCH: the hooks get it, and no time in the
	// image is later.
	Epoch int64
	// Seed is --seed: what the disk's identifiers (the partition
	// table's, the partitions' and the filesystems') derive from. Empty
	// for a digest of the build's inputs, so that whoever has the same
	// inputs gets the same identifiers and no two different builds
	// share them.
	Seed string
}

// DefaultEpoch is the epoch of a --reproducible build when
// SOURCE_DATE_EPOCH is not set: 2025-01-01T00:00:00Z. Any fixed time
// would do; one in the past keeps tools that compare it with the clock
// (shadow's password ages, certificate checks) content.
const DefaultEpoch = 1735689600

// seedInputs is the default seed: a digest of what the plan knows
// shapes the build, the spec (without the seeded identifiers), the
// elements tar and the host's files it carries or lends; but not the
// epoch, the caller's variables that are no setting, secret-shaped
// ones, nor where on the host its files lie.
func (p *Plan) seedInputs() (string, error) {
	// Not the epoch: another one changes the times in the image and
	// what hooks make of SOURCE_DATE_EPOCH, not its identifiers. Of the
	// environment, DIB's settings and what --env passes: the rest of
	// the caller's variables differ from one user and machine to the
	// next, and hooks rarely read them (--no-host-env keeps them out
	// of the hooks too).
	spec := *p.Spec
	spec.SourceDateEpoch = nil
	spec.Types = nil // the same disk, whichever formats it is written in
	// How the build runs and what of the host it reaches: not the image.
	spec.Trace, spec.Break, spec.HostLoopback = false, "", nil
	spec.Env = map[string]string{}
	for k, v := range p.Spec.Env {
		// The identifiers are in the image for anyone to read: no
		// secret goes into what they derive from, where a guess could
		// be tried against them.
		if slices.Contains(notShaping, k) || hookenv.SecretShaped(k, v) {
			continue
		}
		if strings.HasPrefix(k, "DIB_") || slices.ContainsFunc(p.Options.ExplicitEnv, func(kv string) bool { return strings.Split(kv, "=")[0] == k }) {
			spec.Env[k] = v
		}
	}
	for k := range p.Spec.HostDisks {
		// A host file lent as a disk counts by its digest (below) and
		// name, not by where on the host it lies.
		if _, ok := spec.Env[k]; ok {
			spec.Env[k] = p.Spec.HostDiskNames[k]
		}
	}
	js, err := json.Marshal(&spec)
	if err != nil {
		return "", err
	}
	host, err := p.hostInputs()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "dibvm seed 1\x00%d:%s\x00", len(js), js)
	tarSum := sha256.Sum256(p.elementsTar())
	fmt.Fprintf(h, "elements %x\x00", tarSum)
	slices.SortFunc(host, func(a, b checkpoint.HostInput) int { return strings.Compare(a.Name, b.Name) })
	for _, in := range host {
		fmt.Fprintf(h, "%d:%s=%s\x00", len(in.Name), in.Name, in.Digest)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// notShaping are the settings that say how a build runs and where its
// host's files are, not what it makes: they stay out of the seed.
var notShaping = []string{"DIB_NO_CHECKPOINTS", "DIB_CHECKSUM", "DIB_IMAGE_CACHE", "DIB_MANIFEST_SAVE_DIR", "DIB_QUIET", "DIB_DEBUG_TRACE"}

// seedLayout gives the layout the identifiers the guest would otherwise
// make at random, derived from seed: the partition table's, each GPT
// partition's and each filesystem's that its configuration does not
// fix. It says on out what stays different from build to build.
func seedLayout(l *api.Layout, seed string, out io.Writer) (notReproducible []string) {
	if l.DiskID == "" {
		if l.Label == "gpt" {
			l.DiskID = seededUUID(seed, "disk")
		} else {
			l.DiskID = "0x" + seededHex(seed, "disk", 4)
		}
	}
	for i := range l.Partitions {
		p := &l.Partitions[i]
		if l.Label == "gpt" && p.UUID == "" {
			p.UUID = seededUUID(seed, "partition "+p.Name)
		}
	}
	for _, d := range l.Devices() {
		if d.FS == nil || d.FS.UUID != "" {
			continue
		}
		if d.FS.Type == "vfat" {
			id := strings.ToUpper(seededHex(seed, "filesystem "+d.Kind, 4))
			d.FS.UUID = id[:4] + "-" + id[4:]
			continue
		}
		d.FS.UUID = seededUUID(seed, "filesystem "+d.Kind)
	}
	for _, d := range l.Devices() {
		if d.FS != nil && d.FS.Type == "xfs" {
			notReproducible = append(notReproducible, fmt.Sprintf("the xfs filesystem of %s (its tools cannot yet make one from a tree): its bytes differ from build to build, its files do not", d.Kind))
		}
	}
	if l.LVM != nil {
		notReproducible = append(notReproducible, "the LVM metadata (LVM records the time and host it was made on)")
	}
	for _, n := range notReproducible {
		fmt.Fprintf(out, "dibvm: reproducible build: not reproducible: %s\n", n)
	}
	return notReproducible
}

// seededHex is n bytes of the digest of seed and purpose, in hex.
func seededHex(seed, purpose string, n int) string {
	sum := sha256.Sum256([]byte(seed + "\x00" + purpose))
	return hex.EncodeToString(sum[:n])
}

// seededUUID is a UUID derived from seed and purpose: RFC 9562's
// version 8, whose bits but the version and variant are the digest's.
func seededUUID(seed, purpose string) string {
	sum := sha256.Sum256([]byte(seed + "\x00" + purpose))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// reproduce seeds the layout of a reproducible build, once its inputs
// are packed, and writes the spec anew onto the input disk.
func (p *Plan) reproduce() error {
	r := p.Options.Reproducible
	if r == nil || p.Spec.Layout == nil {
		return nil
	}
	if p.Spec.Env["DIB_EXTLINUX"] != "" {
		// The filesystems are made again after finalise.d; extlinux
		// records the sectors its loader lies on, which move.
		return fmt.Errorf("DIB_EXTLINUX with a reproducible build (SOURCE_DATE_EPOCH, --reproducible): extlinux records where its files lie on the disk, which such a build writes anew; use GRUB (unset DIB_EXTLINUX) or build without SOURCE_DATE_EPOCH")
	}
	if r.Seed == "" {
		var err error
		if r.Seed, err = p.seedInputs(); err != nil {
			return err
		}
	}
	p.NotReproducible = seedLayout(p.Spec.Layout, r.Seed, p.Options.Stdout)
	js, err := json.Marshal(p.Spec)
	if err != nil {
		return err
	}
	for i := range p.Inputs {
		if p.Inputs[i].Name == api.SpecFile {
			p.Inputs[i].Data = js
		}
	}
	return nil
}
