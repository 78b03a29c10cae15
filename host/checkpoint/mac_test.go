package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// hexSHA256 is the plain digest a description must not hold.
func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A description on disk holds no plain digest of what the build passed
// to its hooks, so that a reader of the store cannot test guesses of a
// password offline; builds on the store still say which input changed.
func TestDescriptionsHoldNoDigestOfValues(t *testing.T) {
	s, ss := newStore(t)
	secrets := map[string]string{
		"variable DB_PASSWORD":           "hunter2",
		"variable DIB_DEV_USER_PASSWORD": "pw",
		"setting env":                    `"s3cret"`, // a setting's JSON
	}
	publish := func(value string, below *Meta) (*Meta, Inputs) {
		t.Helper()
		in := Inputs{}
		for name, v := range secrets {
			in.AddString(name, v)
		}
		in.AddString("variable DB_PASSWORD", value)
		plain := maps.Clone(in)
		l, err := ss.NewLayer(below, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		m := &Meta{Phase: "root.d", Made: time.Now(), Inputs: in}
		m.Key = Key("", "root.d", in)
		if err := ss.Publish(l, m); err != nil {
			t.Fatal(err)
		}
		if Key("", "root.d", plain) != m.Key || in["variable DB_PASSWORD"] != plain["variable DB_PASSWORD"] {
			t.Error("publishing changed the caller's inputs")
		}
		return m, plain
	}
	m, plain := publish("hunter2", nil)
	raw, err := os.ReadFile(filepath.Join(s.Dir, m.Key+".json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range secrets {
		for _, form := range []string{v, `"` + v + `"`} {
			if d := hexSHA256(form); bytes.Contains(raw, []byte(d)) {
				t.Errorf("the description holds the SHA-256 of %s's value %q:\n%s", name, form, raw)
			}
		}
		if bytes.Contains(raw, []byte(plain[name])) {
			t.Errorf("the description holds the digest of %s", name)
		}
		if !bytes.Contains(raw, []byte(name)) {
			t.Errorf("the description does not name %s", name)
		}
	}
	if info, err := os.Stat(filepath.Join(s.Dir, macKeyFile)); err != nil || info.Mode().Perm() != 0o600 || info.Size() != macKeySize {
		t.Errorf("the store's key: %v %v", info, err)
	}

	// A later build with a changed variable is told so.
	got, err := ss.Get(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	now := maps.Clone(plain)
	now.AddString("variable DB_PASSWORD", "hunter3")
	if changes, ok := ss.Changes(got, now); !ok || !slices.Equal(changes, []string{"variable DB_PASSWORD (changed)"}) {
		t.Errorf("Changes = %v, %v; want the password changed", changes, ok)
	}
	if changes, ok := ss.Changes(got, plain); !ok || len(changes) != 0 {
		t.Errorf("Changes with the same inputs = %v, %v", changes, ok)
	}
	// The same value under two names is keyed apart.
	if k := seal(make([]byte, 32), Inputs{"a": "x", "b": "x"}); k["a"] == k["b"] {
		t.Error("two inputs of the same value have the same keyed digest")
	}
}

// A description an older dibvm wrote, with plain digests, explains
// nothing until pruning rewrites it keyed; then it explains again.
func TestOldDescriptionsAreKeyedWhenPruned(t *testing.T) {
	s, ss := newStore(t)
	m := keep(t, ss, nil, "root.d", "aa", time.Now())
	in := Inputs{}
	in.AddString("variable DB_PASSWORD", "hunter2")
	old := *m
	old.Inputs, old.InputsMAC = in, ""
	js, _ := json.Marshal(&old)
	path := filepath.Join(s.Dir, m.Key+".json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ss.Get(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	if changes, ok := ss.Changes(got, Inputs{}); ok {
		t.Errorf("a description with plain digests is compared: %v", changes)
	}
	ss.Close()
	if _, err := s.Prune(Limits{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(hexSHA256("hunter2"))) {
		t.Errorf("pruning left the plain digest in the description:\n%s", raw)
	}
	got, err = s.read(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	now := Inputs{}
	now.AddString("variable DB_PASSWORD", "hunter3")
	ss, err = s.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if changes, ok := ss.Changes(got, now); !ok || !slices.Equal(changes, []string{"variable DB_PASSWORD (changed)"}) {
		t.Errorf("Changes after pruning = %v, %v", changes, ok)
	}
}

// Builds that make the store's key at once all get the same one.
func TestMACKeyMadeOnce(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := (&Store{Dir: dir}).macKey()
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if !bytes.Equal(k, keys[0]) || len(k) != macKeySize {
			t.Fatalf("builds disagree on the key: %x", keys)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the store: %v", entries)
	}
	// A damaged key is replaced.
	os.WriteFile(filepath.Join(dir, macKeyFile), []byte("short"), 0o600)
	if k, err := (&Store{Dir: dir}).macKey(); err != nil || len(k) != macKeySize || bytes.Equal(k, keys[0]) {
		t.Errorf("a damaged key: %x, %v", k, err)
	}
}

// A store pruned of every checkpoint is empty: the inputs' key goes too.
func TestPruneAllRemovesTheKey(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if _, err := s.macKey(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(Limits{MaxAge: time.Nanosecond}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, macKeyFile)); !os.IsNotExist(err) {
		t.Errorf("the inputs' key is still there: %v", err)
	}
}
