package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/dibvm/dibvm/host/termsafe"
)

// This file is a checkpoint as another store takes it (a registry's,
// see host/ocicache): its chain of descriptions and layers out of one
// store, and into another, checked.

// maxShared bounds the chain taken in: as maxChain.
const maxShared = maxChain

// Export is the chain of the checkpoint of key, bottom first, as another
// store may take it, and each layer's file by its name. The
// descriptions lose what only this store can read or what is this
// store's own: the inputs keyed with its key, and its use counts.
func (ss *Session) Export(key string) ([]*Meta, map[string]string, error) {
	return ss.export(key, map[string]bool{})
}

// export is Export, the layers in verified not checked again (and those
// checked added).
func (ss *Session) export(key string, verified map[string]bool) ([]*Meta, map[string]string, error) {
	m, err := ss.Get(key)
	if err != nil {
		return nil, nil, err
	}
	chain := []*Meta{m}
	for cur := m; cur.Parent != ""; {
		p, err := ss.Get(cur.Parent)
		if err != nil || len(chain) > maxShared {
			return nil, nil, fmt.Errorf("checkpoint %s sits on %s, which is gone", Short(cur.Key), Short(cur.Parent))
		}
		chain = append(chain, p)
		cur = p
	}
	files := map[string]string{}
	var out []*Meta
	for i := len(chain) - 1; i >= 0; i-- {
		c := *chain[i]
		if !verified[c.Layer] {
			if err := ss.Verify(&c); err != nil {
				return nil, nil, err
			}
			verified[c.Layer] = true
		}
		files[c.Layer] = ss.s.Path(&c)
		c.Inputs, c.InputsMAC, c.Uses, c.LastUsed = nil, "", 0, time.Time{}
		out = append(out, &c)
	}
	return out, files, nil
}

// Import takes into the store the chain whose top is the checkpoint of
// key, each layer from its file by name, and returns the top's
// description. Everything is checked first: the chain's links, each
// layer's digest and size, and that a layer's qcow2 header names no file
// but its description's backing layer. A checkpoint the store has
// already is kept as it is.
func (ss *Session) Import(key string, chain []*Meta, files map[string]string) (*Meta, error) {
	if err := checkChain(key, chain); err != nil {
		return nil, err
	}
	for _, m := range chain {
		if have, err := ss.Get(m.Key); err == nil && have.Digest == m.Digest && have.Layer == m.Layer {
			continue
		}
		if err := ss.importOne(m, files[m.Layer]); err != nil {
			return nil, fmt.Errorf("checkpoint %s after %s: %w", Short(m.Key), m.Phase, err)
		}
	}
	return ss.Get(key)
}

// checkChain checks that chain runs from a layer on nothing up to key,
// each on the one before.
func checkChain(key string, chain []*Meta) error {
	if len(chain) == 0 || len(chain) > maxShared {
		return fmt.Errorf("a chain of %d checkpoints", len(chain))
	}
	for i, m := range chain {
		if !keyPattern.MatchString(m.Key) || !layerPattern.MatchString(m.Layer) || (m.Backing != "" && !layerPattern.MatchString(m.Backing)) {
			return errors.New("a checkpoint's description is damaged")
		}
		if err := CheckSuites(m.Suites); err != nil {
			return err
		}
		switch {
		case i == 0 && (m.Parent != "" || m.Backing != ""):
			return fmt.Errorf("checkpoint %s: the chain's first sits on another", Short(m.Key))
		case i > 0 && (m.Parent != chain[i-1].Key || m.Backing != chain[i-1].Layer):
			return fmt.Errorf("checkpoint %s: does not sit on the one before it in the chain", Short(m.Key))
		}
	}
	if chain[len(chain)-1].Key != key {
		return fmt.Errorf("a chain up to checkpoint %s, not %s", Short(chain[len(chain)-1].Key), Short(key))
	}
	return nil
}

func (ss *Session) importOne(m *Meta, src string) error {
	if src == "" {
		return fmt.Errorf("no file for its layer %s", m.Layer)
	}
	dst := filepath.Join(ss.s.Dir, m.Layer)
	tmp, err := os.CreateTemp(ss.s.Dir, ".import-*.qcow2")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if filepath.Dir(filepath.Dir(src)) == filepath.Join(ss.s.Dir, sharedDir) {
		// Pulled for this (into .shared/take-*): moved, not copied.
		tmp.Close()
		err = os.Rename(src, tmp.Name())
	} else {
		err = copyInto(tmp, src)
	}
	if err != nil {
		return err
	}
	// What is checked is the file that is kept.
	if err := checkBacking(tmp.Name(), m.Backing); err != nil {
		return err
	}
	c := *m
	c.Layer = filepath.Base(tmp.Name())
	if err := ss.Verify(&c); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), dst); errors.Is(err, fs.ErrExist) {
		// A layer of that name is here: it must be this one.
		if err := ss.Verify(m); err != nil {
			return fmt.Errorf("a layer named %s is here already, and is another: %w", m.Layer, err)
		}
	} else if err != nil {
		return err
	}
	imported := *m
	imported.LastUsed = imported.Made
	if err := ss.s.writeMeta(&imported, true); err != nil && !errors.Is(err, ErrTaken) {
		return err
	}
	return nil
}

// copyInto copies src into f, and closes f.
func copyInto(f *os.File, src string) error {
	in, err := os.Open(src)
	if err != nil {
		f.Close()
		return err
	}
	defer in.Close()
	_, err = io.Copy(f, in)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkBacking refuses a layer whose qcow2 header names any file but
// backing (a layer name in the store), or an external data file: the
// header is the pusher's, and QEMU would open what it names.
func checkBacking(path, backing string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "-f", "qcow2", "--output=json", path).Output()
	if err != nil {
		return fmt.Errorf("not a qcow2 layer: %v", err)
	}
	var info struct {
		Backing        string `json:"backing-filename"`
		BackingFormat  string `json:"backing-filename-format"`
		FormatSpecific struct {
			Data struct {
				DataFile string `json:"data-file"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return err
	}
	if info.Backing != backing || info.FormatSpecific.Data.DataFile != "" || (backing != "" && info.BackingFormat != "qcow2") {
		return fmt.Errorf("its header names %q (and data file %q), not its backing layer %q", info.Backing, info.FormatSpecific.Data.DataFile, backing)
	}
	return nil
}

// sharedDir is where layers are pulled into the store's file system:
// what a pull cut off leaves there (named for its digest) the next takes
// up, and checks whole; nothing there is a checkpoint until imported.
const sharedDir = ".shared"

// Take brings the checkpoint of key from sh into the store, if accept
// (when set) takes its chain, and the chain agrees with the store's own
// checkpoints, checked as Import checks it. An error wrapping
// errRefusedChain is the chain refused; others are sh's.
func (ss *Session) Take(ctx context.Context, sh Shared, key string, accept func([]*Meta) error) (*Meta, error) {
	partials := filepath.Join(ss.s.Dir, sharedDir)
	if err := os.MkdirAll(partials, 0o700); err != nil {
		return nil, err
	}
	dropStale(partials, time.Now().Add(-24*time.Hour))
	into, err := os.MkdirTemp(partials, "take-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(into)
	have := func(digest string) (string, bool) {
		all, _ := ss.s.List()
		for _, m := range all {
			if "sha256:"+m.Digest == digest {
				return ss.s.Path(m), true
			}
		}
		return "", false
	}
	check := func(chain []*Meta) error {
		if err := checkChain(key, chain); err != nil {
			return err
		}
		for _, m := range chain {
			// The store's own checkpoint of a key is the one its
			// descendants sit on: a chain through another is of no use.
			if mine, err := ss.Get(m.Key); err == nil && (mine.Layer != m.Layer || mine.Digest != m.Digest) {
				return fmt.Errorf("this store has its own checkpoint %s after %s, which the chain's is not", Short(m.Key), termsafe.String(m.Phase))
			}
		}
		if accept != nil {
			return accept(chain)
		}
		return nil
	}
	chain, files, err := sh.Fetch(ctx, key, have, partials, into, check)
	if err != nil {
		return nil, err
	}
	m, err := ss.Import(key, chain, files)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRefusedChain, err)
	}
	return m, nil
}

var errRefusedChain = errors.New("refused")

// maxSkew is how far ahead of this machine's clock another's may be: a
// checkpoint made later than that is not taken, as its age would never
// reach --checkpoint-max-age.
const maxSkew = 10 * time.Minute

// Give sends the checkpoint of key, and the chain under it, to sh;
// verified are the layers checked already, which are not again.
func (ss *Session) Give(ctx context.Context, sh Shared, key string, verified map[string]bool) error {
	chain, files, err := ss.export(key, verified)
	if err != nil {
		return err
	}
	return sh.Send(ctx, key, chain, files)
}

// fetchShared brings the checkpoint of key from the shared cache into
// the store, if young enough and admitted, and says what came of it.
func (k *Keeper) fetchShared(key string, now time.Time) (*Meta, error) {
	accept := func(chain []*Meta) error {
		for _, m := range chain {
			if k.lim.MaxAge > 0 && now.Sub(m.Made) > k.lim.MaxAge {
				return fmt.Errorf("checkpoint %s was made %s ago, more than --checkpoint-max-age", Short(m.Key), Age(now.Sub(m.Made)))
			}
			if m.Made.After(now.Add(maxSkew)) {
				return fmt.Errorf("checkpoint %s says it was made in the future, at %s", Short(m.Key), m.Made.UTC().Format(time.RFC3339))
			}
		}
		if k.admits != nil {
			return k.admits(chain[len(chain)-1].Downloads)
		}
		return nil
	}
	m, err := k.sess.Take(k.ctx, k.shared, key, accept)
	switch {
	case errors.Is(err, ErrNotShared):
	case errors.Is(err, errRefusedChain):
		fmt.Fprintf(k.out, "dibvm: the shared cache's checkpoint %s is %s\n", Short(key), termsafe.String(err.Error()))
	case err != nil:
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			fmt.Fprintf(k.out, "dibvm: the shared cache: %s; going on without it\n", termsafe.String(e.Error()))
		}
	default:
		fmt.Fprintf(k.out, "dibvm: took checkpoint %s after %s from the shared cache\n", Short(key), termsafe.String(m.Phase))
	}
	return m, err
}

// dropStale removes the partial files pulls left in dir before cutoff,
// when no pull is writing there (it holds dir's .lock: see
// ocicache.PartialsLock).
func dropStale(dir string, cutoff time.Time) {
	lock := flock.New(filepath.Join(dir, ".lock"))
	if ok, _ := lock.TryLock(); !ok {
		return
	}
	defer lock.Unlock()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, err := e.Info()
		if err == nil && info.ModTime().Before(cutoff) && strings.HasPrefix(e.Name(), ".pull-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// sendShared sends what the build kept to the shared cache.
func (k *Keeper) sendShared() {
	if k.shared == nil {
		return
	}
	verified := map[string]bool{}
	for _, key := range k.sent {
		if !k.shared.Sends() {
			return
		}
		if err := k.sess.Give(k.ctx, k.shared, key, verified); err != nil {
			fmt.Fprintf(k.out, "dibvm: the shared cache: checkpoint %s not sent: %s\n", Short(key), termsafe.String(err.Error()))
			continue
		}
		fmt.Fprintf(k.out, "dibvm: sent checkpoint %s to the shared cache\n", Short(key))
	}
}
