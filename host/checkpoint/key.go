// Package checkpoint keeps the build trees of earlier builds, keyed by
// everything that could have shaped them, so that a build whose inputs
// up to some phase are the same as an earlier one's starts from there.
//
// A checkpoint is one layer of a qcow2 chain: the scratch disk as it was
// after a phase, written as the changes over the checkpoint before it.
// Making one copies nothing (QEMU switches the disk to a fresh overlay
// and the old top becomes the checkpoint); resuming from one is a new
// overlay over it.
//
// StepInputs says what shapes the tree at each step of a build, from
// its spec and the elements tar; a Keeper finds where a build resumes
// and keeps the tree at each step it reaches.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Inputs is what shaped one step of the build, each named for a person
// reading why a checkpoint missed ("hooks/install.d/50-foo", "variable
// DIB_RELEASE"), with the digest of its content.
type Inputs map[string]string

// Add records an input and its content.
func (in Inputs) Add(name string, content []byte) {
	sum := sha256.Sum256(content)
	in[name] = hex.EncodeToString(sum[:])
}

// AddString records an input whose content is a string.
func (in Inputs) AddString(name, content string) { in.Add(name, []byte(content)) }

// Key is the key of the checkpoint after phase, made on the checkpoint
// parent (empty for the first) from in. It is a digest of all three, so
// a key says everything about the tree before it too.
func Key(parent, phase string, in Inputs) string {
	h := sha256.New()
	fmt.Fprintf(h, "dibvm checkpoint 1\x00%s\x00%s\x00", parent, phase)
	for _, name := range slices.Sorted(maps.Keys(in)) {
		fmt.Fprintf(h, "%d:%s=%s\x00", len(name), name, in[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Changes names, in order, the inputs that differ between was and now:
// changed, added and removed ones.
func Changes(was, now Inputs) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(now)) {
		old, ok := was[name]
		switch {
		case !ok:
			out = append(out, name+" (new)")
		case old != now[name]:
			out = append(out, name+" (changed)")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[name]; !ok {
			out = append(out, name+" (gone)")
		}
	}
	return out
}

// Summary says the first few of changes in one line.
func Summary(changes []string) string {
	const most = 3
	if len(changes) <= most {
		return strings.Join(changes, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(changes[:most], ", "), len(changes)-most)
}
