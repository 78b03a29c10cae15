package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/termsafe"
)

// Build is the build whose trees a Keeper keeps.
type Build struct {
	// Spec is the build's; StartKeeper sets its Resume and Checkpoints.
	Spec  *api.Spec
	Steps []*Step // from StepInputs
	// ScratchSize is the scratch disk's size in bytes.
	ScratchSize int64
	VM          HelperVM
	// Out hears where the build resumes, what it keeps, and why not.
	Out io.Writer
	// Downloads, when set, records the build's downloads: each
	// checkpoint keeps those made so far, and a build that resumes from
	// one starts with them.
	Downloads *lockfile.Recorder
	// Admits, when set, says why a checkpoint made with these downloads
	// is not one to resume from, or nil: a build that replays a lock
	// file resumes only from a tree made of files the lock names.
	Admits func([]lockfile.Download) error
	// Shared, when set, is a cache beyond the store (a registry): a
	// checkpoint the store lacks is looked for there, under the key this
	// build computed, and what the build keeps is sent there.
	Shared Shared
}

// Shared is a cache of checkpoints beyond the store. Its errors are
// notices: a build goes on without it.
type Shared interface {
	// Fetch brings the chain of key, if accept takes its descriptions
	// (before any layer is fetched): the descriptions, bottom first, and
	// each layer's file by name in into. Layers are fetched through
	// partials, where what a fetch cut off left is taken up; have gives
	// a layer the store already has by its digest, which is not fetched.
	Fetch(ctx context.Context, key string, have func(digest string) (string, bool), partials, into string, accept func([]*Meta) error) ([]*Meta, map[string]string, error)
	// Sends says whether Send sends anywhere.
	Sends() bool
	// Send sends the chain of key.
	Send(ctx context.Context, key string, chain []*Meta, files map[string]string) error
}

// ErrNotShared is a key the shared cache does not have.
var ErrNotShared = errors.New("not in the shared cache")

// HelperVM is what of the helper VM may shape a tree: the first step's
// key records it.
type HelperVM struct {
	// Appliance is the name of the helper appliance's directory, which
	// is named for what it was built from; "" for none.
	Appliance string
	CPUs      int
	CPUModel  string
	Memory    int // MiB
	Network   bool
	Offline   bool
	// Egress is the egress policy (--allow-net, --allow-only) as %+v
	// prints it.
	Egress string
}

// VM is what the keeper needs of the running helper VM: to switch the
// scratch disk to a new layer (see machine.Machine.Snapshot).
type VM interface {
	Snapshot(ctx context.Context, serial, overlay string) error
}

// Keeper runs a build's checkpoints: it finds what to resume from before
// the VM boots, and keeps the tree at each step the guest reports.
type Keeper struct {
	ctx     context.Context
	store   *Store
	lim     Limits
	out     io.Writer
	sess    *Session
	spec    *api.Spec
	size    int64
	order   []*Step // the steps that run, each phase's sub-steps before it
	chain   []*Meta // the layers resumed from, bottom first, then those kept
	active  *Layer  // the layer the guest writes
	layers  []*Layer
	next    int             // index in order of the first step still to keep
	checked map[string]bool // layers verified by their digests
	stopped bool
	kept    []string
	// downloads is Build.Downloads.
	downloads *lockfile.Recorder
	admits    func([]lockfile.Download) error
	shared    Shared
	sent      []string // the keys kept, to send
}

// SlowHook is how long a hook runs before the build keeps its tree after
// it: long enough that a checkpoint (about a second) is worth it.
const SlowHook = 10 * time.Second

// StartKeeper opens the store and finds the furthest step kept by an
// earlier build with the same inputs: the last phase kept, or inside the
// next one, after the last hook kept, each layer under it verified by
// its digest. It sets the spec's Resume and Checkpoints and makes the
// scratch disk's layer (see Layer).
func StartKeeper(ctx context.Context, store *Store, lim Limits, b Build) (*Keeper, error) {
	if err := addHelper(b.Steps[0].inputs, b.VM, b.ScratchSize); err != nil {
		return nil, err
	}
	chainKeys(b.Steps)
	sess, err := store.Open()
	if err != nil {
		return nil, err
	}
	k := &Keeper{ctx: ctx, store: store, lim: lim, out: b.Out, sess: sess, spec: b.Spec, size: b.ScratchSize, checked: map[string]bool{}, downloads: b.Downloads, admits: b.Admits, shared: b.Shared}
	for _, s := range b.Steps {
		if s.run {
			k.order = append(k.order, s.subs...)
			k.order = append(k.order, s)
		}
	}
	k.resume(b.Steps, time.Now())
	for _, s := range k.order[k.next:] {
		if s.hook == "" {
			b.Spec.Checkpoints = append(b.Spec.Checkpoints, s.phase)
		}
	}
	var below *Meta
	if n := len(k.chain); n > 0 {
		below = k.chain[n-1]
		if k.downloads != nil {
			k.downloads.Add(below.Downloads)
		}
	}
	if k.active, err = sess.NewLayer(below, k.size); err != nil {
		sess.Close()
		return nil, err
	}
	k.layers = append(k.layers, k.active)
	return k, nil
}

// addHelper adds to first, the first step's inputs, the running dibvm
// and the helper VM.
func addHelper(first Inputs, vm HelperVM, size int64) error {
	self, err := selfDigest()
	if err != nil {
		return err
	}
	first["dibvm"] = self
	if vm.Appliance != "" {
		first.AddString("helper appliance", vm.Appliance)
	}
	first.AddString("helper VM", fmt.Sprintf("cpus=%d cpu=%s memory=%d network=%v offline=%v scratch=%d", vm.CPUs, vm.CPUModel, vm.Memory, vm.Network, vm.Offline, size))
	first.AddString("egress policy (--allow-net, --allow-only)", vm.Egress)
	return nil
}

// resume finds the furthest step to resume after, says so, and sets the
// spec's Resume.
func (k *Keeper) resume(steps []*Step, now time.Time) {
	var at *Step // resumed after
	miss := ""   // the line saying why the next phase missed
	for _, s := range steps {
		if !s.run {
			continue
		}
		chain, why := k.find(s, now)
		if why == "" {
			k.chain, at = chain, s
			continue
		}
		miss = fmt.Sprintf("dibvm: no checkpoint after %s: %s\n", s.phase, why)
		// Inside the phase, after the last hook kept.
		for _, sub := range slices.Backward(s.subs) {
			if chain, why := k.find(sub, now); why == "" {
				k.chain, at = chain, sub
				break
			}
		}
		break
	}
	if at != nil {
		below := k.chain[len(k.chain)-1]
		fmt.Fprintf(k.out, "dibvm: resuming after %s from checkpoint %s (made %s ago)\n", at.name(), Short(below.Key), Age(now.Sub(below.Made)))
		k.spec.Resume = at.name()
		k.sess.Used(k.chain, now)
		k.next = slices.Index(k.order, at) + 1
	}
	fmt.Fprint(k.out, miss)
}

// Layer is the path of the qcow2 layer the scratch disk is to be, over
// the checkpoint resumed from.
func (k *Keeper) Layer() string { return k.active.Path }

// names are the names of the steps still to keep, in order.
func (k *Keeper) names() []string {
	if k == nil {
		return nil
	}
	var out []string
	for _, s := range k.order[k.next:] {
		out = append(out, s.name())
	}
	return out
}

// Wants says whether to keep the tree at the point the build reached,
// in order as the host saw it (see host/session's sequence): at the end
// of a phase still to keep, or after a hook of one that ran for SlowHook
// or longer by the host's clock. A nil Keeper keeps nothing.
func (k *Keeper) Wants(point string, took time.Duration) bool {
	if k == nil || k.stopped {
		return false
	}
	s := k.pending(point)
	return s != nil && (s.hook == "" || took >= SlowHook)
}

// pending is the step still to keep that point names, or nil.
func (k *Keeper) pending(point string) *Step {
	i := slices.IndexFunc(k.order[k.next:], func(s *Step) bool { return s.name() == point })
	if i < 0 {
		return nil
	}
	return k.order[k.next+i]
}

// find looks up the checkpoint of step s, and the layers it sits on down
// to the first, each of which must be young enough and sound. It returns
// them bottom first, or why there is none to resume from. A layer that
// fails verification, or sits on a layer that was remade, is removed.
func (k *Keeper) find(s *Step, now time.Time) ([]*Meta, string) {
	m, err := k.sess.Get(s.key)
	if errors.Is(err, fs.ErrNotExist) && k.shared != nil {
		if got, ferr := k.fetchShared(s.key, now); ferr == nil {
			m, err = got, nil
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if s.hook != "" {
			return nil, "none made yet"
		}
		return nil, k.explainMiss(s)
	case err != nil:
		return nil, err.Error()
	}
	// Down the chain of layers: those below a checkpoint may be of other
	// steps than the ones before it (a build that resumed inside a phase
	// kept its end on that).
	chain := []*Meta{m}
	for cur := m; cur.Parent != ""; {
		p, err := k.sess.Get(cur.Parent)
		if err != nil || len(chain) > maxChain {
			return nil, fmt.Sprintf("checkpoint %s sits on checkpoint %s, which is gone", Short(cur.Key), Short(cur.Parent))
		}
		chain = append(chain, p)
		cur = p
	}
	slices.Reverse(chain)
	if k.admits != nil {
		if err := k.admits(m.Downloads); err != nil {
			return nil, fmt.Sprintf("checkpoint %s was made with %v", Short(m.Key), err)
		}
	}
	var below *Meta
	for _, l := range chain {
		if ok, why := Usable(l, below, k.lim.MaxAge, now); !ok {
			if l.Made.After(now.Add(-k.lim.MaxAge)) || k.lim.MaxAge == 0 {
				// Not its age: it sits on a checkpoint that was
				// remade, and no build can use it again.
				k.sess.Discard(l)
			}
			return nil, why
		}
		if !k.checked[l.Layer] {
			if err := k.sess.Verify(l); err != nil {
				k.sess.Discard(l)
				return nil, err.Error() + "; it was removed"
			}
			k.checked[l.Layer] = true
		}
		below = l
	}
	return chain, ""
}

// maxChain bounds the layers under a checkpoint: four phases, each with
// a few slow hooks.
const maxChain = 64

// explainMiss says why no checkpoint has s's key: what changed since the
// last one made after the same phase on the same checkpoint.
func (k *Keeper) explainMiss(s *Step) string {
	sibs := k.sess.Siblings(s.base, s.phase)
	if s.base == "" {
		// Of the first steps, compare with one of the same elements.
		same := slices.DeleteFunc(slices.Clone(sibs), func(m *Meta) bool { return !slices.Equal(m.Elements, k.spec.Elements) })
		if len(same) > 0 {
			sibs = same
		}
	}
	if len(sibs) == 0 {
		if s.base == "" {
			return "none made yet for these elements; building from the start"
		}
		return "none made yet"
	}
	changes, ok := k.sess.Changes(sibs[0], s.inputs)
	if !ok {
		return "changed since checkpoint " + Short(sibs[0].Key) + " (its description does not say what)"
	}
	if len(changes) == 0 {
		return "its inputs are those of checkpoint " + Short(sibs[0].Key) + ", made on another copy of the tree"
	}
	return fmt.Sprintf("changed since checkpoint %s: %s", Short(sibs[0].Key), Summary(changes))
}

// Keep makes the scratch disk's current layer the checkpoint the guest
// reports, if it is one still to keep, and switches the disk to a new
// layer over it. A checkpoint that cannot be made is said once, and the
// build goes on without keeping more. Steps the guest did not keep
// (hooks that were quick, a filesystem that would not freeze) are
// passed over: each key says what its tree holds, whatever lies under it.
// It says whether it kept the tree.
func (k *Keeper) Keep(vm VM, cp *api.Checkpoint) bool {
	if k.stopped {
		return false
	}
	name := api.CheckpointName(cp.Phase, cp.Hook)
	if cp.Unfrozen != "" {
		fmt.Fprintf(k.out, "dibvm: no checkpoint after %s: the helper VM could not bring the tree to rest: %s\n", name, termsafe.String(cp.Unfrozen))
		return false
	}
	s := k.pending(name)
	if s == nil {
		// The build's control lets through only a point Wants took.
		k.Stop("the helper VM asked to keep the tree after " + name + ", which is no step still to keep")
		return false
	}
	k.next = slices.Index(k.order, s) + 1
	start := time.Now()
	over, err := k.sess.NewLayerOver(k.active, k.size)
	if err == nil {
		k.layers = append(k.layers, over)
		err = vm.Snapshot(k.ctx, api.ScratchSerial, over.Path)
	}
	if err != nil {
		k.Stop(fmt.Sprintf("could not switch the scratch disk to a new layer after %s: %v", name, err))
		return false
	}
	kept := k.active
	k.active = over
	meta := &Meta{
		Key: s.key, Base: s.base, Phase: name, Made: time.Now(),
		Elements: k.spec.Elements, Arch: k.spec.Arch, Inputs: s.inputs,
	}
	meta.Suites = cp.Suites
	if k.downloads != nil {
		meta.Downloads = k.downloads.Downloads()
	}
	if n := len(k.chain); n > 0 {
		meta.Parent, meta.Backing = k.chain[n-1].Key, k.chain[n-1].Layer
	}
	switch err := k.sess.Publish(kept, meta); {
	case errors.Is(err, ErrTaken):
		k.Stop(fmt.Sprintf("another build kept the tree after %s first", name))
		return false
	case err != nil:
		k.Stop(fmt.Sprintf("could not keep the tree after %s: %v", name, err))
		return false
	}
	k.chain = append(k.chain, meta)
	k.kept = append(k.kept, fmt.Sprintf("%s (%d MiB, %.1fs)", name, meta.Size>>20, time.Since(start).Seconds()))
	k.sent = append(k.sent, meta.Key)
	return true
}

// Stop says why, and keeps no more checkpoints.
func (k *Keeper) Stop(why string) {
	fmt.Fprintf(k.out, "dibvm: %s; this build keeps no more checkpoints\n", why)
	k.stopped = true
}

// Close, once QEMU has let go of the disk, removes the layers no
// checkpoint names, says what was kept, and prunes the store to its
// limits if no other build is using it.
func (k *Keeper) Close() {
	published := map[string]bool{}
	for _, m := range k.chain {
		published[m.Layer] = true
	}
	for _, l := range k.layers {
		if !published[l.Name] {
			os.Remove(l.Path)
		}
	}
	k.sendShared()
	k.sess.Close()
	if len(k.kept) > 0 {
		fmt.Fprintf(k.out, "dibvm: kept the tree after %s in %s\n", strings.Join(k.kept, ", "), k.store.Dir)
	}
	p, err := k.store.Prune(k.lim, time.Now())
	if err == nil && len(p.Checkpoints) > 0 {
		fmt.Fprintf(k.out, "dibvm: pruned %d checkpoints (%d MiB) past --checkpoint-max-age or --cache-max-size\n", len(p.Checkpoints), p.Bytes>>20)
	}
}

// selfDigest is the digest of the running dibvm, which carries the guest
// agent: a different dibvm may build differently.
var selfDigest = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	sum, _, err := sha256sum.File(self)
	return sum, err
})
