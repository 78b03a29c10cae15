package checkpoint

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// These tests make real qcow2 layers with qemu-img.

func newStore(t *testing.T) (*Store, *Session) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (scripts/install-deps.sh installs it)")
	}
	s := &Store{Dir: filepath.Join(t.TempDir(), "checkpoints")}
	ss, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	return s, ss
}

// keep makes a layer over below (nil: none), writes data into it as a
// build would, and publishes it as the checkpoint after phase.
func keep(t *testing.T, ss *Session, below *Meta, phase, data string, made time.Time) *Meta {
	t.Helper()
	l, err := ss.NewLayer(below, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x"+data+" 0 64k", l.Path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	parent := ""
	m := &Meta{Phase: phase, Made: made, Inputs: Inputs{"x": data}}
	if below != nil {
		parent, m.Parent, m.Backing = below.Key, below.Key, below.Layer
	}
	m.Key = Key(parent, phase, m.Inputs)
	if err := ss.Publish(l, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKeyCoversParentPhaseAndInputs(t *testing.T) {
	in := Inputs{}
	in.AddString("hooks/root.d/10-a", "a")
	base := Key("", "root.d", in)
	if Key("", "root.d", Inputs{"hooks/root.d/10-a": in["hooks/root.d/10-a"]}) != base {
		t.Error("the same inputs give another key")
	}
	other := Inputs{}
	other.AddString("hooks/root.d/10-a", "b")
	for name, k := range map[string]string{
		"content": Key("", "root.d", other),
		"parent":  Key(base, "root.d", in),
		"phase":   Key("", "install.d", in),
		"name":    Key("", "root.d", Inputs{"hooks/root.d/10-b": in["hooks/root.d/10-a"]}),
		// A name and digest must not run together into another pair.
		"split": Key("", "root.d", Inputs{"hooks/root.d/10-a=" + in["hooks/root.d/10-a"][:4]: in["hooks/root.d/10-a"][4:]}),
	} {
		if k == base {
			t.Errorf("a change of %s keeps the key", name)
		}
	}
	changes := Changes(Inputs{"a": "1", "b": "2", "c": "3"}, Inputs{"a": "1", "b": "9", "d": "4"})
	if want := []string{"b (changed)", "d (new)", "c (gone)"}; !slices.Equal(changes, want) {
		t.Errorf("Changes = %v, want %v", changes, want)
	}
	if got := Summary([]string{"a", "b", "c", "d", "e"}); got != "a, b, c and 2 more" {
		t.Errorf("Summary = %q", got)
	}
}

func TestPublishGetVerify(t *testing.T) {
	s, ss := newStore(t)
	now := time.Now()
	root := keep(t, ss, nil, "root.d", "aa", now)
	inst := keep(t, ss, root, "install.d", "bb", now)
	for _, m := range []*Meta{root, inst} {
		got, err := ss.Get(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ss.Verify(got); err != nil {
			t.Errorf("a layer as written fails verification: %v", err)
		}
		if info, err := os.Stat(s.Path(got)); err != nil || info.Mode().Perm()&0o222 != 0 {
			t.Errorf("a published layer is writable: %v %v", info.Mode(), err)
		}
	}
	// The layer above names the one below by its file name, relative to
	// the store: qemu-img finds the chain from there.
	out, err := exec.Command("qemu-img", "info", "--backing-chain", s.Path(inst)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backing file: "+root.Layer) {
		t.Errorf("qemu-img info of the upper layer: %v\n%s", err, out)
	}
	if ok, why := Usable(inst, root, time.Hour, now); !ok {
		t.Errorf("Usable: %s", why)
	}
	if ok, _ := Usable(inst, root, time.Hour, now.Add(2*time.Hour)); ok {
		t.Error("a checkpoint older than the limit is usable")
	}
	other := *root
	other.Layer = "00000000000000000000000000000000.qcow2"
	if ok, _ := Usable(inst, &other, 0, now); ok {
		t.Error("a checkpoint on another copy of its parent is usable")
	}

	// Publishing the same key again loses, and leaves the first alone.
	l, err := ss.NewLayer(nil, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	again := &Meta{Key: root.Key, Phase: "root.d", Made: now}
	if err := ss.Publish(l, again); !errors.Is(err, ErrTaken) {
		t.Errorf("second Publish of a key = %v, want ErrTaken", err)
	}
	if got, _ := ss.Get(root.Key); got == nil || got.Layer != root.Layer {
		t.Error("the second Publish replaced the first checkpoint")
	}

	// A truncated layer, or one changed in place, fails verification.
	path := s.Path(inst)
	os.Chmod(path, 0o644)
	if err := os.Truncate(path, inst.Size-512); err != nil {
		t.Fatal(err)
	}
	if err := ss.Verify(inst); err == nil {
		t.Error("a truncated layer passes verification")
	}
	data, _ := os.ReadFile(s.Path(root))
	os.Chmod(s.Path(root), 0o644)
	data[len(data)/2] ^= 1
	os.WriteFile(s.Path(root), data, 0o444)
	if err := ss.Verify(root); err == nil {
		t.Error("a layer with a flipped bit passes verification")
	}
	ss.Discard(root)
	for _, m := range []*Meta{root, inst} {
		if _, err := ss.Get(m.Key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a discarded checkpoint, or one above it, is still there: %v", err)
		}
	}

	// Descriptions that do not name a layer of the store are refused.
	os.WriteFile(filepath.Join(s.Dir, inst.Key+".json"), []byte(`{"key":"`+inst.Key+`","layer":"../../etc/passwd"}`), 0o600)
	if _, err := ss.Get(inst.Key); err == nil {
		t.Error("a checkpoint naming a file outside the store is accepted")
	}
}

func TestPrune(t *testing.T) {
	s, ss := newStore(t)
	now := time.Now()
	old := keep(t, ss, nil, "root.d", "01", now.Add(-10*24*time.Hour))
	oldChild := keep(t, ss, old, "install.d", "02", now.Add(-10*24*time.Hour))
	a := keep(t, ss, nil, "root.d", "03", now.Add(-time.Hour))
	aChild := keep(t, ss, a, "install.d", "04", now.Add(-time.Hour))
	b := keep(t, ss, nil, "root.d", "05", now)
	// A layer that a build made and never published.
	orphan, err := ss.NewLayer(nil, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	ss.Used([]*Meta{b}, now)

	if _, err := s.Prune(Limits{MaxAge: 7 * 24 * time.Hour}, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("Prune while a build has the store open = %v, want ErrBusy", err)
	}
	ss.Close()

	p, err := s.Prune(Limits{MaxAge: 7 * 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(p.Checkpoints); !slices.Equal(got, sorted(old.Key, oldChild.Key)) || p.Files != 1 {
		t.Errorf("pruned by age: %v and %d files, want the old two and the orphan", got, p.Files)
	}
	if _, err := os.Stat(orphan.Path); !os.IsNotExist(err) {
		t.Error("the unpublished layer is still there")
	}
	// Over the size limit, the least recently used go first, with what
	// sits on them: a and its child, not b, which a build used.
	p, err = s.Prune(Limits{MaxSize: b.Size + 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(p.Checkpoints); !slices.Equal(got, sorted(a.Key, aChild.Key)) {
		t.Errorf("pruned by size: %v, want a and its child", got)
	}
	left, _ := s.List()
	if got := keysOf(left); !slices.Equal(got, []string{b.Key}) {
		t.Errorf("left: %v, want b", got)
	}
	if m, _ := s.read(b.Key); m.Uses != 1 {
		t.Errorf("b used %d times, want 1", m.Uses)
	}
}

// keysOf are the keys of ms, sorted.
// TestPruneKeepsTheBottomOfAChain: over the size limit, a chain loses
// its top first, so that what is left can still be resumed from.
func TestPruneKeepsTheBottomOfAChain(t *testing.T) {
	s, ss := newStore(t)
	now := time.Now()
	root := keep(t, ss, nil, "root.d", "01", now.Add(-2*time.Minute))
	top := keep(t, ss, root, "install.d", "02", now.Add(-time.Minute))
	ss.Close()
	p, err := s.Prune(Limits{MaxSize: root.Size + top.Size - 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(p.Checkpoints); !slices.Equal(got, []string{top.Key}) {
		t.Errorf("pruned %v, want only the top %s", got, top.Key)
	}
}

func keysOf(ms []*Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Key)
	}
	slices.Sort(out)
	return out
}

func sorted(keys ...string) []string {
	slices.Sort(keys)
	return keys
}

// hostileText is what a hook can put in a Release file, or anywhere else
// the host reads back: sequences that retitle the window, move the
// cursor, start an 8-bit CSI, or reorder what a terminal shows.
var hostileText = []string{
	"\x1b]0;title\x07",
	"\x1b[2J\x1b[H",
	"\u009b31m",
	"\x9b31m",
	"abc\u202etxt.exe",
	"a\x00b",
	"line\rover",
}

func TestCheckSuites(t *testing.T) {
	ok := [][]api.Suite{
		nil,
		{{Name: "deb.debian.org/debian/dists/bookworm", Date: "Sat, 10 Jun 2023 08:53:37 UTC"}},
		{{Name: "mirror/ubuntu/dists/noble-updates", Date: "Thu, 25 Apr 2024 15:10:24 UTC"}, {Name: "höst/dists/x", Date: "1 Jan"}},
	}
	for _, ss := range ok {
		if err := CheckSuites(ss); err != nil {
			t.Errorf("CheckSuites(%q) = %v", ss, err)
		}
	}
	var bad [][]api.Suite
	for _, h := range hostileText {
		bad = append(bad, []api.Suite{{Name: "bookworm" + h, Date: "Sat, 10 Jun 2023"}}, []api.Suite{{Name: "bookworm", Date: h}})
	}
	bad = append(bad, make([]api.Suite, maxSuites+1), []api.Suite{{Name: strings.Repeat("x", maxSuiteText+1)}})
	for _, ss := range bad {
		err := CheckSuites(ss)
		if err == nil {
			t.Errorf("CheckSuites(%q) accepted it", ss)
			continue
		}
		for _, r := range err.Error() {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x202e {
				t.Errorf("CheckSuites(%q): its error carries %U raw: %q", ss, r, err)
			}
		}
	}
}

// What the guest reported with a checkpoint is checked when it is
// published: a checkpoint whose suites could drive a terminal is not
// kept, and its layer is left for the build to remove.
func TestPublishRefusesUnprintableSuites(t *testing.T) {
	s, ss := newStore(t)
	for i, h := range hostileText {
		l, err := ss.NewLayer(nil, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		m := &Meta{Phase: "root.d", Made: time.Now(), Inputs: Inputs{"x": h},
			Suites: []api.Suite{{Name: "bookworm", Date: "Sat, 10 Jun 2023 " + h}}}
		m.Key = Key("", "root.d", m.Inputs)
		if err := ss.Publish(l, m); err == nil || !strings.Contains(err.Error(), "not printable") {
			t.Errorf("%d: Publish of suites with %q = %v, want it refused", i, h, err)
		}
		if _, err := ss.Get(m.Key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%d: a checkpoint with %q was kept: %v", i, h, err)
		}
		if fi, err := os.Stat(l.Path); err != nil || fi.Mode().Perm()&0o200 == 0 {
			t.Errorf("%d: the refused layer was made read-only or removed: %v", i, err)
		}
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Errorf("the store lists %d checkpoints", len(all))
	}
}
