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
	p := &Pruned{}
	byKey := map[string]*Meta{}
	for _, m := range all {
		byKey[m.Key] = m
	}
	gone := map[string]bool{}
	remove := func(m *Meta, why string) {
		if gone[m.Key] {
			return
		}
		gone[m.Key] = true
		p.Checkpoints, p.Why = append(p.Checkpoints, m), append(p.Why, why)
		p.Bytes += m.Size
		os.Remove(filepath.Join(s.Dir, m.Key+".json"))
		os.Remove(s.Path(m))
	}
	for _, m := range all {
		if lim.MaxAge > 0 && now.Sub(m.Made) > lim.MaxAge {
			remove(m, "older than "+Age(lim.MaxAge))
		}
	}
	// Then what sat on what is gone, until nothing more goes.
	for more := true; more; {
		more = false
		for _, m := range all {
			if gone[m.Key] || m.Parent == "" {
				continue
			}
			if parent, ok := byKey[m.Parent]; !ok || gone[m.Parent] || parent.Layer != m.Backing {
				remove(m, "the checkpoint below it is gone")
				more = true
			}
		}
	}
	if lim.MaxSize > 0 {
		var total int64
		live := slices.DeleteFunc(slices.Clone(all), func(m *Meta) bool { return gone[m.Key] })
		for _, m := range live {
			total += m.Size
		}
		// Least recently used first, a chain counting as used when any
		// of it was; within a chain, the top first, so that what is
		// left is still a chain to resume from.
		used, depth := map[string]time.Time{}, map[string]int{}
		for _, m := range live {
			d := 0
			for p := m; p != nil; p = byKey[p.Parent] {
				used[p.Key] = later(used[p.Key], m.LastUsed, p.LastUsed)
				d++
				if d > len(all) {
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
		for _, m := range live {
			if total <= lim.MaxSize {
				break
			}
			for _, d := range append([]*Meta{m}, descendants(live, m)...) {
				if !gone[d.Key] {
					total -= d.Size
					remove(d, "least recently used, over --cache-max-size")
				}
			}
		}
	}
	// Descriptions an older dibvm wrote, with plain digests of the
	// inputs: keyed now, as a build would write them.
	for _, m := range all {
		if !gone[m.Key] && m.InputsMAC == "" {
			s.writeMeta(m, false)
		}
	}
	// Layers no checkpoint names: builds that stopped, or lost a race.
	named := map[string]bool{}
	for _, m := range all {
		if !gone[m.Key] {
			named[m.Layer] = true
		}
	}
	// The inputs' key keys descriptions only: with none left (no build
	// runs while the store is pruned) it goes too, and the store is empty.
	if len(named) == 0 {
		os.Remove(filepath.Join(s.Dir, macKeyFile))
	}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		n := e.Name()
		if (layerPattern.MatchString(n) && !named[n]) || (strings.HasPrefix(n, ".meta-") && strings.HasSuffix(n, ".tmp")) {
			if info, err := e.Info(); err == nil {
				p.Bytes += info.Size()
			}
			os.Remove(filepath.Join(s.Dir, n))
			p.Files++
		}
	}
	return p, nil
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
