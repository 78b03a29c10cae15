package checkpoint

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A checkpoint's description names the inputs that shaped it, so that a
// later build that misses can say what changed. Written as their plain
// digests, they would let anyone who reads the store test guesses of an
// input offline: a variable passed to the hooks (a password in --env,
// DIB_DEV_USER_PASSWORD) is one short string, hashed alone. So the store
// writes each input's digest keyed with a secret of its own: an
// HMAC-SHA256 under a random key made once for the store (inputs.key,
// 0600, beside the descriptions). Builds on the same store key their
// inputs the same way, so they can still compare them; a reader of the
// descriptions without the key learns only which inputs changed.
//
// The checkpoint's key is still made from the plain digests (see Key):
// it must be computable from the inputs alone. It is one digest over all
// of a step's inputs at once, dibvm's own binary among them, so it
// records no single value.

// macKeyFile holds the store's key for the inputs in descriptions.
const macKeyFile = "inputs.key"

const macKeySize = 32

// macScheme prefixes Meta.InputsMAC: how the inputs are keyed.
const macScheme = "hmac-sha256:"

// macKey returns the store's key for the inputs in descriptions, making
// it if there is none. Builds that make it at once agree on it: each
// writes its own beside it and links it into place, and all read the
// first one linked. A damaged key (not 32 bytes) is replaced; the
// descriptions keyed with it then explain nothing.
func (s *Store) macKey() ([]byte, error) {
	path := filepath.Join(s.Dir, macKeyFile)
	for range 3 {
		key, err := os.ReadFile(path)
		if err == nil && len(key) == macKeySize {
			return key, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoints: the key of the inputs: %w", err)
		}
		if err := s.newMACKey(path, err == nil); err != nil {
			return nil, fmt.Errorf("checkpoints: make the key of the inputs %s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("checkpoints: the key of the inputs %s is not %d bytes; remove it", path, macKeySize)
}

// newMACKey writes a new random key to path: linked into place if there
// is none (the first wins), renamed over a damaged one.
func (s *Store) newMACKey(path string, replace bool) error {
	key := make([]byte, macKeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	// Named as the store's other temporary files, which pruning sweeps.
	tmp, err := os.CreateTemp(s.Dir, ".meta-inputs-key-*.tmp") // 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(key); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		return os.Rename(tmp.Name(), path)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// macID names key in descriptions, so that those keyed with another key
// (one that was replaced) are not compared.
func macID(key []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("dibvm checkpoint inputs key"))
	return macScheme + hex.EncodeToString(h.Sum(nil))[:16]
}

// seal keys each input's digest, with its name, so that the same value
// under two names is not seen as the same either.
func seal(key []byte, in Inputs) Inputs {
	out := make(Inputs, len(in))
	for name, digest := range in {
		h := hmac.New(sha256.New, key)
		fmt.Fprintf(h, "%d:%s=%s", len(name), name, digest)
		out[name] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// sealMeta keys m's inputs if they are plain digests (a checkpoint being
// published, or a description an older dibvm wrote).
func (s *Store) sealMeta(m *Meta) error {
	if m.InputsMAC != "" {
		return nil
	}
	key, err := s.macKey()
	if err != nil {
		return err
	}
	m.Inputs, m.InputsMAC = seal(key, m.Inputs), macID(key)
	return nil
}

// Changes names, in order, the inputs that differ between the checkpoint
// was and now, the plain digests of a build's step (see the function
// Changes). It reports false when was cannot be compared: its inputs are
// keyed with another key, or not keyed (an older dibvm's description,
// until pruning rewrites it).
func (ss *Session) Changes(was *Meta, now Inputs) ([]string, bool) {
	key, err := ss.s.macKey()
	if err != nil || was.InputsMAC != macID(key) {
		return nil, false
	}
	return Changes(was.Inputs, seal(key, now)), true
}
