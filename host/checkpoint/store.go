package checkpoint

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofrs/flock"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// Store is a directory of checkpoints, in the user's cache.
//
// Layout:
//
//	<key>.json       a checkpoint: its Meta, naming its layer
//	<nonce>.qcow2    a layer, named once and never reused, read-only once
//	                 a checkpoint names it; its qcow2 header names its
//	                 backing layer by file name, relative to the store
//	lock             builds hold it shared while they build; pruning
//	                 holds it exclusively, so no build's chain is pulled
//	                 from under it
//	meta.lock        serialises rewriting a checkpoint's use counts
//	inputs.key       the key of the inputs in descriptions (see seal)
//
// A layer's name is never reused, so a header always leads to the file
// that was there when the layer above it was made, whatever happens to
// the checkpoints around it. A checkpoint is published by linking its
// finished Meta to <key>.json: the first build to do so wins, and a
// build that loses stops making checkpoints, since its layers above sit
// on its own copy.
type Store struct {
	Dir string
}

// Meta describes one checkpoint.
type Meta struct {
	Key string `json:"key"`
	// Parent is the key of the checkpoint below, whose layer this one's
	// sits on. Base is the key this one's was made on: the checkpoint
	// after the phase before. They differ for a checkpoint made on one
	// kept inside its own phase.
	Parent string `json:"parent,omitempty"`
	Base   string `json:"base,omitempty"`
	// Phase is where the tree was kept: after a phase, or after one of
	// its hooks ("install.d/10-x").
	Phase string `json:"phase"`
	// Layer is the qcow2 file of this checkpoint; Backing is its parent's
	// layer, as its header names it.
	Layer   string `json:"layer"`
	Backing string `json:"backing,omitempty"`
	Digest  string `json:"sha256"` // of Layer
	Size    int64  `json:"size"`   // of Layer, in bytes

	Made     time.Time `json:"made"`
	LastUsed time.Time `json:"last_used"`
	Uses     int       `json:"uses"` // builds that resumed from here or above

	Elements []string `json:"elements"`
	Arch     string   `json:"arch"`
	// Suites are the APT suites the tree's package lists came from, with
	// the Date of their Release files: what the mirror said then.
	Suites []api.Suite `json:"suites,omitempty"`
	// Downloads are the packages and indexes the build had downloaded
	// when it kept the tree, as the egress proxy saw them: a build that
	// resumes here downloads none of them, yet its lock file names them.
	Downloads []lockfile.Download `json:"downloads,omitempty"`
	// Inputs are what shaped this step, for saying what changed when a
	// later build misses: as written, each digest keyed with the store's
	// key (see seal), which InputsMAC names.
	Inputs    Inputs `json:"inputs"`
	InputsMAC string `json:"inputs_hmac,omitempty"`
}

// ErrTaken means another build published the same checkpoint first.
var ErrTaken = errors.New("another build made this checkpoint first")

// ErrBusy means a build is using the store, so nothing can be pruned now.
var ErrBusy = errors.New("a build is using the checkpoints; prune again when it has ended")

var keyPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
var layerPattern = regexp.MustCompile(`^[0-9a-f]{32}\.qcow2$`)

// Session is a build's use of the store: while it is open, no checkpoint
// the build can see is pruned.
type Session struct {
	s    *Store
	lock *flock.Flock
}

// Open opens the store for a build, making it if needed.
func (s *Store) Open() (*Session, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	l := flock.New(filepath.Join(s.Dir, "lock"))
	if err := l.RLock(); err != nil {
		return nil, fmt.Errorf("checkpoints: lock %s: %w", s.Dir, err)
	}
	return &Session{s: s, lock: l}, nil
}

// Close ends the session.
func (ss *Session) Close() error { return ss.lock.Unlock() }

// Get reads the checkpoint of key; a missing one is fs.ErrNotExist.
func (ss *Session) Get(key string) (*Meta, error) { return ss.s.read(key) }

func (s *Store) read(key string) (*Meta, error) {
	if !keyPattern.MatchString(key) {
		return nil, fmt.Errorf("checkpoint key %q: %w", key, fs.ErrNotExist)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, key+".json"))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", Short(key), err)
	}
	if m.Key != key || !layerPattern.MatchString(m.Layer) || (m.Backing != "" && !layerPattern.MatchString(m.Backing)) {
		return nil, fmt.Errorf("checkpoint %s: its description is damaged", Short(key))
	}
	return &m, nil
}

// Path is where the checkpoint's layer is.
func (s *Store) Path(m *Meta) string { return filepath.Join(s.Dir, m.Layer) }

// Siblings are the checkpoints made after phase on the checkpoint base,
// newest first: what a build that missed can compare itself to.
func (ss *Session) Siblings(base, phase string) []*Meta {
	all, _ := ss.s.List()
	var out []*Meta
	for _, m := range all {
		if m.Base == base && m.Phase == phase {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Meta) int { return b.Made.Compare(a.Made) })
	return out
}

// Verify checks the checkpoint's layer against its digest.
func (ss *Session) Verify(m *Meta) error {
	sum, n, err := sha256sum.File(ss.s.Path(m))
	if err != nil {
		return err
	}
	if n != m.Size || sum != m.Digest {
		return fmt.Errorf("checkpoint %s after %s: its layer %s is not what was written (%d bytes, want %d; or its digest differs)", Short(m.Key), m.Phase, m.Layer, n, m.Size)
	}
	return nil
}

// Discard removes a checkpoint that cannot be used (it failed
// verification, or sits on an older copy of its parent), and the
// checkpoints above it, which sit on it. A layer's name is never used
// again; builds that have one open keep reading it.
func (ss *Session) Discard(m *Meta) {
	all, _ := ss.s.List()
	ss.discard(m, all)
}

func (ss *Session) discard(m *Meta, all []*Meta) {
	os.Remove(filepath.Join(ss.s.Dir, m.Key+".json"))
	os.Remove(ss.s.Path(m))
	for _, c := range all {
		if c.Parent == m.Key && c.Backing == m.Layer {
			ss.discard(c, all)
		}
	}
}

// Used records that a build resumed from the checkpoints of chain.
func (ss *Session) Used(chain []*Meta, now time.Time) {
	l := flock.New(filepath.Join(ss.s.Dir, "meta.lock"))
	if err := l.Lock(); err != nil {
		return
	}
	defer l.Unlock()
	for _, m := range chain {
		cur, err := ss.s.read(m.Key)
		if err != nil {
			continue
		}
		cur.LastUsed, cur.Uses = now, cur.Uses+1
		ss.s.writeMeta(cur, false)
	}
}

// Layer is a qcow2 file a build writes, not yet a checkpoint.
type Layer struct {
	Path string
	Name string
}

// NewLayer makes an empty qcow2 layer of size bytes over the layer of
// backing, or standing alone when backing is nil.
func (ss *Session) NewLayer(backing *Meta, size int64) (*Layer, error) {
	if backing == nil {
		return ss.newLayer("", size)
	}
	return ss.newLayer(backing.Layer, size)
}

// NewLayerOver is NewLayer over a layer that is not yet a checkpoint
// but will be, under its own name, when the new layer becomes the disk.
func (ss *Session) NewLayerOver(backing *Layer, size int64) (*Layer, error) {
	return ss.newLayer(backing.Name, size)
}

func (ss *Session) newLayer(backing string, size int64) (*Layer, error) {
	name, err := newLayerName()
	if err != nil {
		return nil, err
	}
	l := &Layer{Path: filepath.Join(ss.s.Dir, name), Name: name}
	return l, CreateOverlay(l.Path, backing, size)
}

func newLayerName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b) + ".qcow2", nil
}

// CreateOverlay makes a qcow2 image at path of size bytes whose backing
// file is backing (a name relative to path's directory), or none. The
// backing file need not exist yet: QEMU is given the running disk as the
// backing of an overlay it switches to (see machine.Snapshot).
func CreateOverlay(path, backing string, size int64) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img not found: it comes with QEMU (Debian and Ubuntu: apt-get install qemu-utils)")
	}
	args := []string{"create", "-q", "-f", "qcow2"}
	if backing != "" {
		args = append(args, "-F", "qcow2", "-b", backing, "-u")
	}
	args = append(args, path, strconv.FormatInt(size, 10))
	if out, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
		os.Remove(path)
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Publish makes layer, which the build will no longer write, the
// checkpoint m describes (its Key, Parent, Phase, Backing and the rest;
// Publish fills in the layer, its digest and size, and replaces its
// Inputs with their keyed digests). It returns ErrTaken when another
// build published the same key first, and refuses what the guest
// reported for m that CheckSuites refuses, before it touches the layer.
func (ss *Session) Publish(layer *Layer, m *Meta) error {
	if err := CheckSuites(m.Suites); err != nil {
		return err
	}
	f, err := os.Open(layer.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	// QEMU wrote through the host's page cache (cache=unsafe): make it
	// durable before anything names it.
	if err := f.Sync(); err != nil {
		return err
	}
	sum, n, err := sha256sum.Reader(f)
	if err != nil {
		return err
	}
	if err := os.Chmod(layer.Path, 0o444); err != nil {
		return err
	}
	m.Layer, m.Digest, m.Size = layer.Name, sum, n
	if m.LastUsed.IsZero() {
		m.LastUsed = m.Made
	}
	return ss.s.writeMeta(m, true)
}

// Bounds on the APT suites a checkpoint records.
const (
	maxSuites    = 32
	maxSuiteText = 256
)

// CheckSuites refuses APT suites that are not a few short lines of
// printable text. They are the guest's word (any hook can write the
// tree's var/lib/apt/lists/*Release files), kept in the store for as
// long as the checkpoint and shown by dibvm cache ls: what the store
// keeps must not be able to drive a terminal, whoever prints it later.
// The error quotes what it refuses in Go's escaped form.
func CheckSuites(ss []api.Suite) error {
	if len(ss) > maxSuites {
		return fmt.Errorf("the helper VM reported %d APT suites, more than %d", len(ss), maxSuites)
	}
	for _, s := range ss {
		for _, text := range []string{s.Name, s.Date} {
			if len(text) > maxSuiteText {
				return fmt.Errorf("the helper VM reported an APT suite of more than %d bytes", maxSuiteText)
			}
			if !printable(text) {
				return fmt.Errorf("the helper VM reported an APT suite that is not printable text: %q %q", s.Name, s.Date)
			}
		}
	}
	return nil
}

// printable reports text that is valid UTF-8 of graphic characters and
// spaces only: no control characters (C0, DEL, C1) and no format
// characters such as the bidirectional overrides.
func printable(text string) bool {
	if !utf8.ValidString(text) {
		return false
	}
	for _, r := range text {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// writeMeta writes m through a temporary file: linked into place when it
// must be new (publishing), renamed over the old one otherwise. Plain
// input digests are keyed first: no description is written with them.
func (s *Store) writeMeta(m *Meta, create bool) error {
	if err := s.sealMeta(m); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".meta-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	final := filepath.Join(s.Dir, m.Key+".json")
	if !create {
		return os.Rename(tmp.Name(), final)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrTaken
		}
		return err
	}
	return nil
}

// List returns every checkpoint in the store, oldest first.
func (s *Store) List() ([]*Meta, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Meta
	for _, e := range entries {
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !keyPattern.MatchString(key) {
			continue
		}
		if m, err := s.read(key); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Meta) int { return a.Made.Compare(b.Made) })
	return out, nil
}

// Usable reports whether m, found by its key, can be resumed from on top
// of parent (nil for the first step) now, and if not, why not.
func Usable(m, parent *Meta, maxAge time.Duration, now time.Time) (bool, string) {
	if parent != nil && m.Backing != parent.Layer {
		return false, "it sits on an older copy of the checkpoint before it"
	}
	if parent == nil && m.Backing != "" {
		return false, "its description is damaged"
	}
	if maxAge > 0 && now.Sub(m.Made) > maxAge {
		return false, fmt.Sprintf("it was made %s ago, more than --checkpoint-max-age %s", Age(now.Sub(m.Made)), Age(maxAge))
	}
	return true, ""
}

// Age says a duration the way people read ages: 40s, 12m, 5h, 3d.
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Short is the first characters of a key, enough to tell checkpoints
// apart when people read them.
func Short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
