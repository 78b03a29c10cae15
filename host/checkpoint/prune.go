package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Limits are what pruning keeps: checkpoints younger than MaxAge (0: any
// age), within MaxSize bytes in all (0: any size).
type Limits struct {
	MaxAge  time.Duration
	MaxSize int64
}

// Pruned is what one prune removed.
type Pruned struct {
	Checkpoints []*Meta // whole checkpoints, with why each went
	Why         []string
	Files       int   // layers and leftovers no checkpoint named
	Bytes       int64 // freed in all
}

// Prune removes the checkpoints past lim, those that can no longer be
// used (their parent gone or remade), and the files of builds that ended
// without publishing them. Removing a checkpoint removes those above it.
// It needs the store to itself: with a build running it returns ErrBusy
// and removes nothing.
func (s *Store) Prune(lim Limits, now time.Time) (*Pruned, error) {
	l := flock.New(filepath.Join(s.Dir, "lock"))
	ok, err := l.TryLock()
	if err != nil {
		if os.IsNotExist(err) {
			return &Pruned{}, nil
		}
		return nil, err
	}
	if !ok {
		return nil, ErrBusy
	}
	defer l.Unlock()
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	pr := newPruning(s, all)
	if lim.MaxAge > 0 {
		pr.olderThan(lim.MaxAge, now)
	}
	pr.unusable()
	if lim.MaxSize > 0 {
		pr.overSize(lim.MaxSize)
	}
	pr.rekey()
	pr.sweep()
	return pr.out, nil
}

// pruning is one prune under the store's lock: the checkpoints the store
// held when it began, and what has gone since.
type pruning struct {
	s     *Store
	all   []*Meta
	byKey map[string]*Meta
	gone  map[string]bool
	out   *Pruned
}

func newPruning(s *Store, all []*Meta) *pruning {
	pr := &pruning{s: s, all: all, byKey: map[string]*Meta{}, gone: map[string]bool{}, out: &Pruned{}}
	for _, m := range all {
		pr.byKey[m.Key] = m
	}
	return pr
}

// remove removes checkpoint m, once, and records why.
func (pr *pruning) remove(m *Meta, why string) {
	if pr.gone[m.Key] {
		return
	}
	pr.gone[m.Key] = true
	pr.out.Checkpoints, pr.out.Why = append(pr.out.Checkpoints, m), append(pr.out.Why, why)
	pr.out.Bytes += m.Size
	os.Remove(filepath.Join(pr.s.Dir, m.Key+".json"))
	os.Remove(pr.s.Path(m))
}

// olderThan removes the checkpoints made more than maxAge before now.
func (pr *pruning) olderThan(maxAge time.Duration, now time.Time) {
	for _, m := range pr.all {
		if now.Sub(m.Made) > maxAge {
			pr.remove(m, "older than "+Age(maxAge))
		}
	}
}

// unusable removes what sat on what is gone (or on a parent remade since),
// until nothing more goes.
func (pr *pruning) unusable() {
	for more := true; more; {
		more = false
		for _, m := range pr.all {
			if pr.gone[m.Key] || m.Parent == "" {
				continue
			}
			if parent, ok := pr.byKey[m.Parent]; !ok || pr.gone[m.Parent] || parent.Layer != m.Backing {
				pr.remove(m, "the checkpoint below it is gone")
				more = true
			}
		}
	}
}

// overSize removes checkpoints, least recently used first, until those
// left take at most maxSize bytes. Removing one removes those above it.
func (pr *pruning) overSize(maxSize int64) {
	var total int64
	live := slices.DeleteFunc(slices.Clone(pr.all), func(m *Meta) bool { return pr.gone[m.Key] })
	for _, m := range live {
		total += m.Size
	}
	pr.sortByUse(live)
	for _, m := range live {
		if total <= maxSize {
			break
		}
		for _, d := range append([]*Meta{m}, descendants(live, m)...) {
			if !pr.gone[d.Key] {
				total -= d.Size
				pr.remove(d, "least recently used, over --cache-max-size")
			}
		}
	}
}

// sortByUse orders live least recently used first, a chain counting as
// used when any of it was; within a chain, the top first, so that what is
// left is still a chain to resume from.
func (pr *pruning) sortByUse(live []*Meta) {
	used, depth := map[string]time.Time{}, map[string]int{}
	for _, m := range live {
		d := 0
		for p := m; p != nil; p = pr.byKey[p.Parent] {
			used[p.Key] = later(used[p.Key], m.LastUsed, p.LastUsed)
			d++
			if d > len(pr.all) {
				break // a loop of parents: damaged descriptions
			}
		}
		depth[m.Key] = d
	}
	slices.SortStableFunc(live, func(a, b *Meta) int {
		if c := used[a.Key].Compare(used[b.Key]); c != 0 {
			return c
		}
		return depth[b.Key] - depth[a.Key]
	})
}

// rekey rewrites the descriptions an older dibvm wrote, with plain
// digests of the inputs: keyed now, as a build would write them.
func (pr *pruning) rekey() {
	for _, m := range pr.all {
		if !pr.gone[m.Key] && m.InputsMAC == "" {
			pr.s.writeMeta(m, false)
		}
	}
}

// sweep removes the layers no checkpoint names (builds that stopped, or
// lost a race) and descriptions left half written.
func (pr *pruning) sweep() {
	named := map[string]bool{}
	for _, m := range pr.all {
		if !pr.gone[m.Key] {
			named[m.Layer] = true
		}
	}
	// The inputs' key keys descriptions only: with none left (no build
	// runs while the store is pruned) it goes too, and the store is empty.
	if len(named) == 0 {
		os.Remove(filepath.Join(pr.s.Dir, macKeyFile))
	}
	entries, _ := os.ReadDir(pr.s.Dir)
	for _, e := range entries {
		n := e.Name()
		if n == sharedDir {
			pr.sweepShared(filepath.Join(pr.s.Dir, n), time.Now().Add(-24*time.Hour))
			continue
		}
		if (layerPattern.MatchString(n) && !named[n]) || (strings.HasPrefix(n, ".meta-") && strings.HasSuffix(n, ".tmp")) || strings.HasPrefix(n, ".import-") {
			if info, err := e.Info(); err == nil {
				pr.out.Bytes += info.Size()
			}
			os.Remove(filepath.Join(pr.s.Dir, n))
			pr.out.Files++
		}
	}
}

// sweepShared removes what pulls from a shared cache left (no pull runs
// now): what a killed build was taking, and files pulled in part before
// cutoff. Those since are kept for the next pull to take up.
func (pr *pruning) sweepShared(dir string, cutoff time.Time) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || e.Name() == ".lock" || (!strings.HasPrefix(e.Name(), "take-") && !info.ModTime().Before(cutoff)) {
			continue
		}
		pr.out.Bytes += info.Size()
		os.RemoveAll(filepath.Join(dir, e.Name()))
		pr.out.Files++
	}
}

func later(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

func descendants(all []*Meta, m *Meta) []*Meta {
	var out []*Meta
	for _, c := range all {
		if c.Parent == m.Key {
			out = append(out, c)
			out = append(out, descendants(all, c)...)
		}
	}
	return out
}

// Size is the bytes the store's files take.
func (s *Store) Size() int64 {
	var n int64
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}
