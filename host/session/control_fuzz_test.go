package session

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
)

// fuzzPoints are the places of testHooks a fuzzed build can name: every
// hook, and the end of each phase, in the order a build reaches them.
var fuzzPoints = func() []api.Point {
	var out []api.Point
	for _, phase := range elements.Phases {
		for _, h := range testHooks[phase] {
			out = append(out, api.Point{Phase: phase, Hook: h.Name})
		}
		out = append(out, api.Point{Phase: phase})
	}
	return out
}()

// position is where p comes in a build.
func position(p api.Point) int {
	return slices.IndexFunc(fuzzPoints, func(q api.Point) bool { return q == p })
}

// FuzzControlCheckpoints drives the host's control checker with any
// sequence of hook, point and checkpoint messages a guest could send,
// each byte one message: its top two bits the kind (start, finish,
// point, at rest), the rest the place. The bits of the first two bytes
// say, in turn, whether the host wants to keep the tree at each point
// the build reaches (as a slow hook would have it). Whatever the sequence, the host keeps a tree
// only at a point it said keep at, in order, and never at a point
// before a hook it heard start: a kept tree holds nothing its key does
// not name.
func FuzzControlCheckpoints(f *testing.F) {
	enc := func(kind byte, p api.Point) byte { return kind<<6 | byte(position(p)) }
	var good []byte
	for _, p := range fuzzPoints {
		if p.Hook != "" {
			good = append(good, enc(0, p), enc(1, p))
		}
		good = append(good, enc(2, p), enc(3, p))
	}
	f.Add(append([]byte{0xff, 0xff}, good...))
	f.Add(append([]byte{0x0f, 0x0f}, good...))
	// The attack of a hook that replays an earlier hook's run.
	root, install10a, install20b := api.Point{Phase: "root.d", Hook: "10-root"}, api.Point{Phase: "install.d", Hook: "10-a"}, api.Point{Phase: "install.d", Hook: "20-b"}
	f.Add([]byte{0b100, 0, enc(0, root), enc(1, root), enc(2, api.Point{Phase: "root.d"}),
		enc(0, install10a), enc(1, install10a), enc(2, install10a), enc(0, install20b), enc(1, install20b),
		enc(0, install10a), enc(1, install10a), enc(2, install10a), enc(3, install10a)})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		wanted, data := uint16(data[0])|uint16(data[1])<<8, data[2:]
		var buf bytes.Buffer
		for _, b := range data {
			i := int(b & 0x3f)
			if i >= len(fuzzPoints) {
				continue
			}
			p := fuzzPoints[i]
			var m api.Message
			switch b >> 6 {
			case 0:
				m.Hook = &api.Hook{Phase: p.Phase, Script: p.Hook}
			case 1:
				m.Hook = &api.Hook{Phase: p.Phase, Script: p.Hook, Done: true}
			case 2:
				m.Point = &p
			case 3:
				m.Checkpoint = &api.Checkpoint{Phase: p.Phase, Hook: p.Hook}
			}
			api.WriteMessage(&buf, m)
		}
		latest := -1   // the furthest hook heard to start
		lastKept := -1 // the last point kept
		var said []string
		c := &control{diskSize: disk, seq: newSequence(testHooks, "")}
		c.stop = func() {}
		c.onHook = func(h *api.Hook) {
			if !h.Done {
				latest = max(latest, position(api.Point{Phase: h.Phase, Hook: h.Script}))
			}
		}
		calls := 0
		c.wants = func(name string, _ time.Duration) bool {
			calls++
			if wanted&(1<<((calls-1)%16)) != 0 {
				said = append(said, name)
				return true
			}
			return false
		}
		c.reply = func(string) {}
		c.onCheckpoint = func(cp *api.Checkpoint) {
			p := api.Point{Phase: cp.Phase, Hook: cp.Hook}
			name := api.CheckpointName(p.Phase, p.Hook)
			if len(said) == 0 || said[len(said)-1] != name {
				t.Fatalf("kept the tree at %s, where the host did not say keep (it said so at %v)", name, said)
			}
			if pos := position(p); pos < latest {
				t.Fatalf("kept the tree at %s after a later hook, %s, started", name, api.CheckpointName(fuzzPoints[latest].Phase, fuzzPoints[latest].Hook))
			} else if pos <= lastKept {
				t.Fatalf("kept the tree at %s after a later point", name)
			} else {
				lastKept = pos
			}
		}
		c.read(&buf)
	})
}
