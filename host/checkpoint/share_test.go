package checkpoint

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// A chain exported from one store is imported into another whole and
// checked; a changed layer, a broken chain, or a layer whose header
// names a host file is refused, and leaves nothing.
func TestExportImport(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (scripts/install-deps.sh installs it)")
	}
	from := &Store{Dir: filepath.Join(t.TempDir(), "a")}
	sess, err := from.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var below *Meta
	var keys []string
	for i, phase := range []string{"root.d", "install.d"} {
		l, err := sess.NewLayer(below, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		key := strings.Repeat(strconv.Itoa(i+1), 64)
		m := &Meta{Key: key, Phase: phase, Made: time.Now(), Elements: []string{"e"}, Inputs: Inputs{"x": "1"}}
		if below != nil {
			m.Parent, m.Backing = below.Key, below.Layer
		}
		if err := sess.Publish(l, m); err != nil {
			t.Fatal(err)
		}
		below = m
		keys = append(keys, key)
	}
	chain, files, err := sess.Export(keys[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[0].Key != keys[0] || chain[1].Inputs != nil || len(files) != 2 {
		t.Fatalf("exported %d checkpoints, %d files: %+v", len(chain), len(files), chain)
	}

	into := func() *Session {
		s := &Store{Dir: filepath.Join(t.TempDir(), "b")}
		ss, err := s.Open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	}
	b := into()
	top, err := b.Import(keys[1], chain, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(top); err != nil || top.Backing != chain[0].Layer {
		t.Errorf("imported: %+v, %v", top, err)
	}
	if _, err := b.Import(keys[1], chain, files); err != nil {
		t.Errorf("imported again: %v", err)
	}

	evil := filepath.Join(t.TempDir(), "evil.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", evil).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	changed := filepath.Join(t.TempDir(), "changed.qcow2")
	data, _ := os.ReadFile(files[chain[0].Layer])
	os.WriteFile(changed, append(data, 'x'), 0o644)
	for _, tc := range []struct {
		name  string
		key   string
		chain []*Meta
		files map[string]string
		want  string
	}{
		{"not the key asked for", keys[0], chain, files, "not " + Short(keys[0])},
		{"a broken chain", keys[1], chain[1:], files, "the chain's first sits on another"},
		{"a changed layer", keys[1], chain, map[string]string{chain[0].Layer: changed, chain[1].Layer: files[chain[1].Layer]}, "is not what was written"},
		{"a header naming a host file", keys[0], chain[:1], map[string]string{chain[0].Layer: evil}, `names "/etc/passwd"`},
	} {
		s := into()
		if _, err := s.Import(tc.key, tc.chain, tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if left, _ := s.s.List(); len(left) != 0 {
			t.Errorf("%s: left %d checkpoints", tc.name, len(left))
		}
		if tmp, _ := filepath.Glob(filepath.Join(s.s.Dir, ".import-*")); len(tmp) != 0 {
			t.Errorf("%s: left %v", tc.name, tmp)
		}
	}
}

// storeShared is a shared cache that is another store on this host: the
// keeper's part alone (host/ocicache is the registry's).
type storeShared struct {
	s       *Store
	fetched []string
}

func (f *storeShared) Fetch(_ context.Context, key string, have func(string) (string, bool), _, dir string, accept func([]*Meta) error) ([]*Meta, map[string]string, error) {
	ss, err := f.s.Open()
	if err != nil {
		return nil, nil, err
	}
	defer ss.Close()
	chain, files, err := ss.Export(key)
	if err != nil {
		return nil, nil, ErrNotShared
	}
	if err := accept(chain); err != nil {
		return nil, nil, err
	}
	for name, path := range files {
		data, _ := os.ReadFile(path)
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
		files[name] = filepath.Join(dir, name)
	}
	f.fetched = append(f.fetched, key)
	return chain, files, nil
}

func (f *storeShared) Sends() bool { return true }

func (f *storeShared) Send(_ context.Context, key string, chain []*Meta, files map[string]string) error {
	ss, err := f.s.Open()
	if err != nil {
		return err
	}
	defer ss.Close()
	_, err = ss.Import(key, chain, files)
	return err
}

// A build whose store lacks a checkpoint takes it from the shared cache
// under the key it computed, and resumes from it.
func TestResumeFromShared(t *testing.T) {
	files := map[string]string{"hooks/root.d/10-a": "root", "hooks/install.d/10-x": "x"}
	remote := &storeShared{s: &Store{Dir: filepath.Join(t.TempDir(), "remote")}}
	start := func(store *Store) (*api.Spec, *Keeper) {
		spec := &api.Spec{ImageName: "img", Elements: []string{"e"}, Arch: "amd64"}
		steps, err := StepInputs(spec, nil, elementsTar(t, files))
		if err != nil {
			t.Fatal(err)
		}
		k, err := StartKeeper(context.Background(), store, Limits{MaxAge: time.Hour}, Build{Spec: spec, Steps: steps, ScratchSize: 64 << 20, Out: io.Discard, Shared: remote})
		if err != nil {
			t.Fatal(err)
		}
		return spec, k
	}
	// The first runner keeps root.d, as a build would, and sends it.
	first := &Store{Dir: filepath.Join(t.TempDir(), "first")}
	_, k := start(first)
	root := k.order[0]
	l, err := k.sess.NewLayer(nil, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	m := &Meta{Key: root.key, Base: root.base, Phase: "root.d", Made: time.Now(), Elements: []string{"e"}, Inputs: root.inputs}
	if err := k.sess.Publish(l, m); err != nil {
		t.Fatal(err)
	}
	k.sent = append(k.sent, m.Key)
	k.Close()

	spec, k := start(&Store{Dir: filepath.Join(t.TempDir(), "second")})
	defer k.Close()
	if spec.Resume != "root.d" || len(remote.fetched) == 0 {
		t.Errorf("the second runner resumes after %q, having fetched %v", spec.Resume, remote.fetched)
	}
}
