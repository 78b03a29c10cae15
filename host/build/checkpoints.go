package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/machine"
)

// Checkpoints say where and how long a build keeps its trees.
type Checkpoints struct {
	Store  *checkpoint.Store
	Limits checkpoint.Limits // --checkpoint-max-age, --cache-max-size
}

// step is one phase a build can be kept after (api.CheckpointPhases),
// with what shapes the tree in it.
type step struct {
	phase  string
	inputs checkpoint.Inputs
	key    string
	run    bool // some element has hooks for it, or it installs -p packages
}

// stepPhases are the phases each step runs: the one it is named for and
// those since the step before.
var stepPhases = map[string][]string{
	"root.d":         {"root.d"},
	"pre-install.d":  {"extra-data.d", "pre-install.d"},
	"install.d":      {"install.d"},
	"post-install.d": {"post-install.d"},
}

// specPostFields are the settings of a Spec that matter only after the
// last checkpoint (the disk, the outputs) or that the keys record apart
// (the environment, the host's files, the checkpoints themselves).
var specPostFields = []string{
	"types", "break", "layout", "image_size_gb", "extra_size_gb", "journal_mib",
	"mkfs_options", "max_online_resize", "checkpoints", "resume",
	"env", "host_files", "host_disks", "packages",
}

// stepInputs is what shapes the tree in each step, as far as Prepare
// knows it (Run adds the helper VM's part to the first): for the first,
// the build's settings, the environment, the files of the host it
// carries or lends, and every file of the hooks and elements that is no
// phase's; for each step, the files of its phases. When unsure whether
// something matters, it is in: a key may miss needlessly, never hit
// wrongly.
func stepInputs(spec *api.Spec, inputs []hostInput, tarball []byte) ([]*step, error) {
	steps := make([]*step, len(api.CheckpointPhases))
	byPhase := map[string]*step{}
	for i, ph := range api.CheckpointPhases {
		steps[i] = &step{phase: ph, inputs: checkpoint.Inputs{}}
		for _, p := range stepPhases[ph] {
			byPhase[p] = steps[i]
		}
	}
	first := steps[0].inputs
	first.AddString("checkpoint format", "1")
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var settings map[string]json.RawMessage
	if err := json.Unmarshal(js, &settings); err != nil {
		return nil, err
	}
	for k, v := range settings {
		if !slices.Contains(specPostFields, k) {
			first.Add("setting "+k, v)
		}
	}
	for k, v := range spec.Env {
		first.AddString("variable "+k, v)
	}
	for _, in := range inputs {
		first[in.name] = in.digest
	}
	if len(spec.Packages) > 0 {
		s := byPhase["install.d"]
		s.inputs.AddString("-p packages", strings.Join(spec.Packages, ","))
		s.run = true
	}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		fmt.Fprintf(h, "%c %o %s\x00", hdr.Typeflag, hdr.Mode, hdr.Linkname)
		if _, err := io.Copy(h, tr); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		digest := hex.EncodeToString(h.Sum(nil))
		phase := phaseOf(name)
		switch s := byPhase[phase]; {
		case phase == "":
			first[name] = digest
		case s != nil:
			s.inputs[name] = digest
			s.run = s.run || (strings.HasPrefix(name, "hooks/") && hdr.Typeflag != tar.TypeDir)
		}
		// Files of the phases after the last step shape nothing kept.
	}
	steps[0].run = true // root.d must make the tree
	return steps, nil
}

// chainKeys sets the key of each step that runs, each made on the one
// before.
func chainKeys(steps []*step) {
	parent := ""
	for _, s := range steps {
		if s.run {
			s.key = checkpoint.Key(parent, s.phase, s.inputs)
			parent = s.key
		}
	}
}

// phaseOf is the phase a path of the elements tar belongs to, if any:
// hooks/<phase>/... and elements/<element>/<phase>/...
func phaseOf(name string) string {
	parts := strings.Split(name, "/")
	var dir string
	switch {
	case len(parts) >= 2 && parts[0] == "hooks":
		dir = parts[1]
	case len(parts) >= 3 && parts[0] == "elements":
		dir = parts[2]
	}
	if slices.Contains(elements.Phases, dir) {
		return dir
	}
	return ""
}

// hostInput is a file of the host that reaches the guest, by its digest.
type hostInput struct{ name, digest string }

// fileDigest is the SHA-256 of a file's content.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// selfDigest is the digest of the running dibvm, which carries the guest
// agent: a different dibvm may build differently.
var selfDigest = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	return fileDigest(self)
})

// keeper runs a build's checkpoints: it finds what to resume from before
// the VM boots, and keeps the tree after each phase the guest reports.
type keeper struct {
	ctx     context.Context
	c       *Checkpoints
	out     io.Writer
	sess    *checkpoint.Session
	steps   []*step
	spec    *api.Spec
	size    int64
	chain   []*checkpoint.Meta // resumed from, then kept
	active  *checkpoint.Layer  // the layer the guest writes
	layers  []*checkpoint.Layer
	next    int // index in steps of the next step to keep
	stopped bool
	kept    []string
}

// startKeeper opens the store and finds the longest run of steps kept by
// an earlier build with the same inputs, verifying each by its digest. It
// sets the spec's Resume and Checkpoints and returns the scratch disk's
// layer.
func startKeeper(ctx context.Context, c *Checkpoints, out io.Writer, spec *api.Spec, steps []*step, size int64, mo machine.Options) (*keeper, error) {
	self, err := selfDigest()
	if err != nil {
		return nil, err
	}
	first := steps[0].inputs
	first["dibvm"] = self
	if mo.Appliance != nil {
		// Its directory is named for what it was built from.
		first.AddString("helper appliance", filepath.Base(filepath.Dir(mo.Appliance.Initrd)))
	}
	first.AddString("helper VM", fmt.Sprintf("cpus=%d cpu=%s memory=%d network=%v offline=%v scratch=%d", mo.CPUs, mo.CPUModel, mo.Memory, mo.Network, mo.Offline, size))
	first.AddString("egress policy (--allow-net, --allow-only)", fmt.Sprintf("%+v", mo.Egress))
	chainKeys(steps)
	sess, err := c.Store.Open()
	if err != nil {
		return nil, err
	}
	k := &keeper{ctx: ctx, c: c, out: out, sess: sess, steps: steps, spec: spec, size: size}
	now := time.Now()
	var below *checkpoint.Meta
	miss := "" // the line saying why the first step not resumed missed
	for i, s := range steps {
		if !s.run {
			continue
		}
		m, err := sess.Get(s.key)
		why := ""
		switch {
		case errors.Is(err, fs.ErrNotExist):
			why = k.explainMiss(s, below)
		case err != nil:
			why = err.Error()
		default:
			if ok, reason := checkpoint.Usable(m, below, c.Limits.MaxAge, now); !ok {
				why = reason
				if m.Made.After(now.Add(-c.Limits.MaxAge)) || c.Limits.MaxAge == 0 {
					// Not its age: it sits on a checkpoint that was
					// remade, and no build can use it again.
					sess.Discard(m)
				}
			} else if err := sess.Verify(m); err != nil {
				sess.Discard(m)
				why = err.Error() + "; it was removed"
			}
		}
		if why != "" {
			miss = fmt.Sprintf("dibvm: no checkpoint after %s: %s\n", s.phase, why)
			k.next = i
			break
		}
		k.chain = append(k.chain, m)
		below = m
		k.next = i + 1
	}
	if below != nil {
		fmt.Fprintf(out, "dibvm: resuming after %s from checkpoint %s (made %s ago)\n", below.Phase, checkpoint.Short(below.Key), checkpoint.Age(now.Sub(below.Made)))
	}
	fmt.Fprint(out, miss)
	if below != nil {
		spec.Resume = below.Phase
		sess.Used(k.chain, now)
	}
	for _, s := range steps[k.next:] {
		if s.run {
			spec.Checkpoints = append(spec.Checkpoints, s.phase)
		}
	}
	if k.active, err = sess.NewLayer(below, size); err != nil {
		sess.Close()
		return nil, err
	}
	k.layers = append(k.layers, k.active)
	return k, nil
}

// explainMiss says why no checkpoint has s's key: what changed since the
// last one made after the same phase on the same checkpoint.
func (k *keeper) explainMiss(s *step, below *checkpoint.Meta) string {
	parent := ""
	if below != nil {
		parent = below.Key
	}
	sibs := k.sess.Siblings(parent, s.phase)
	if parent == "" {
		// Of the first steps, compare with one of the same elements.
		same := slices.DeleteFunc(slices.Clone(sibs), func(m *checkpoint.Meta) bool { return !slices.Equal(m.Elements, k.spec.Elements) })
		if len(same) > 0 {
			sibs = same
		}
	}
	if len(sibs) == 0 {
		if parent == "" {
			return "none made yet for these elements; building from the start"
		}
		return "none made yet"
	}
	changes := checkpoint.Changes(sibs[0].Inputs, s.inputs)
	if len(changes) == 0 {
		return "its inputs are those of checkpoint " + checkpoint.Short(sibs[0].Key) + ", which sits on another one"
	}
	return fmt.Sprintf("changed since checkpoint %s: %s", checkpoint.Short(sibs[0].Key), checkpoint.Summary(changes))
}

// keep makes the scratch disk's current layer the checkpoint after cp's
// phase, if it is the one the build was to keep next, and switches the
// disk to a new layer over it. A checkpoint that cannot be made is said
// once, and the build goes on without keeping more.
func (k *keeper) keep(m *machine.Machine, cp *api.Checkpoint) {
	if k.stopped {
		return
	}
	for k.next < len(k.steps) && !k.steps[k.next].run {
		k.next++
	}
	if k.next == len(k.steps) || k.steps[k.next].phase != cp.Phase {
		// The guest could not keep one (its filesystem would not
		// freeze): the chain of keys is broken from here.
		k.stop("the helper VM kept no tree after a phase before " + cp.Phase)
		return
	}
	s := k.steps[k.next]
	k.next++
	start := time.Now()
	over, err := k.sess.NewLayerOver(k.active, k.size)
	if err == nil {
		k.layers = append(k.layers, over)
		err = m.Snapshot(k.ctx, api.ScratchSerial, over.Path)
	}
	if err != nil {
		k.stop(fmt.Sprintf("could not switch the scratch disk to a new layer after %s: %v", s.phase, err))
		return
	}
	kept := k.active
	k.active = over
	meta := &checkpoint.Meta{
		Key: s.key, Phase: s.phase, Made: time.Now(),
		Elements: k.spec.Elements, Arch: k.spec.Arch, Inputs: s.inputs,
	}
	meta.Suites = cp.Suites
	if n := len(k.chain); n > 0 {
		meta.Parent, meta.Backing = k.chain[n-1].Key, k.chain[n-1].Layer
	}
	switch err := k.sess.Publish(kept, meta); {
	case errors.Is(err, checkpoint.ErrTaken):
		k.stop(fmt.Sprintf("another build kept the tree after %s first", s.phase))
		return
	case err != nil:
		k.stop(fmt.Sprintf("could not keep the tree after %s: %v", s.phase, err))
		return
	}
	k.chain = append(k.chain, meta)
	k.kept = append(k.kept, fmt.Sprintf("%s (%d MiB, %.1fs)", s.phase, meta.Size>>20, time.Since(start).Seconds()))
}

func (k *keeper) stop(why string) {
	fmt.Fprintf(k.out, "dibvm: %s; this build keeps no more checkpoints\n", why)
	k.stopped = true
}

// close, once QEMU has let go of the disk, removes the layers no
// checkpoint names, says what was kept, and prunes the store to its
// limits if no other build is using it.
func (k *keeper) close() {
	published := map[string]bool{}
	for _, m := range k.chain {
		published[m.Layer] = true
	}
	for _, l := range k.layers {
		if !published[l.Name] {
			os.Remove(l.Path)
		}
	}
	k.sess.Close()
	if len(k.kept) > 0 {
		fmt.Fprintf(k.out, "dibvm: kept the tree after %s in %s\n", strings.Join(k.kept, ", "), k.c.Store.Dir)
	}
	p, err := k.c.Store.Prune(k.c.Limits, time.Now())
	if err == nil && len(p.Checkpoints) > 0 {
		fmt.Fprintf(k.out, "dibvm: pruned %d checkpoints (%d MiB) past --checkpoint-max-age or --cache-max-size\n", len(p.Checkpoints), p.Bytes>>20)
	}
}
