package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/control"
)

// fakeDisk stands in for the scratch disk's freeze and thaw.
type fakeDisk struct {
	mu      sync.Mutex
	frozen  bool
	events  []string
	refused error
}

func (d *fakeDisk) freeze(dir string) (func() error, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused != nil {
		return nil, d.refused
	}
	d.frozen = true
	d.events = append(d.events, "freeze "+dir)
	return func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.frozen = false
		d.events = append(d.events, "thaw")
		return nil
	}, nil
}

func (d *fakeDisk) isFrozen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frozen
}

// TestPointOverPipes plays the host across pipes, as it is across SSH:
// it reads each frame and answers only then. The disk is frozen while
// the host keeps it, and thawed once the host says go.
func TestPointOverPipes(t *testing.T) {
	ctlR, ctlW := io.Pipe()
	wordsR, wordsW := io.Pipe()
	disk := &fakeDisk{}
	p := &Points{Phases: []string{"install.d"}, Host: control.New(ctlW, wordsR, io.Discard),
		Disk: "/build", Tree: t.TempDir(), Freeze: disk.freeze}
	var heard []string
	hostDone := make(chan error, 1)
	go func() {
		defer wordsW.Close()
		for {
			m, err := api.ReadMessage(ctlR)
			if err != nil {
				hostDone <- nil
				return
			}
			switch {
			case m.Hook != nil:
				heard = append(heard, "hook "+m.Hook.Script+map[bool]string{true: " done"}[m.Hook.Done])
			case m.Point != nil:
				heard = append(heard, "point "+api.CheckpointName(m.Point.Phase, m.Point.Hook))
				io.WriteString(wordsW, api.ReplyKeep+"\n")
			case m.Checkpoint != nil:
				heard = append(heard, "checkpoint, frozen: "+map[bool]string{true: "yes", false: "no"}[disk.isFrozen()])
				io.WriteString(wordsW, api.ReplyGo+"\n")
			default:
				hostDone <- errors.New("unexpected " + m.Kind())
				return
			}
		}
	}()
	w := p.Watcher("install.d")
	for _, step := range []func() error{
		func() error { return w.Starting("10-a") },
		func() error { return w.Finished("10-a", time.Second, true) },
		func() error { return w.Starting("20-b") },
		func() error { return w.Finished("20-b", time.Second, false) },
		func() error { return p.Point("install.d", "") },
		func() error { return p.Point("post-install.d", "") }, // not asked for
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ctlW.Close()
	if err := <-hostDone; err != nil {
		t.Fatal(err)
	}
	want := []string{"hook 10-a", "hook 10-a done", "point install.d/10-a", "checkpoint, frozen: yes",
		"hook 20-b", "hook 20-b done", "point install.d", "checkpoint, frozen: yes"}
	if strings.Join(heard, "\n") != strings.Join(want, "\n") {
		t.Errorf("the host heard:\n%s\nwant:\n%s", strings.Join(heard, "\n"), strings.Join(want, "\n"))
	}
	if got := strings.Join(disk.events, ", "); got != "freeze /build, thaw, freeze /build, thaw" {
		t.Errorf("disk: %s", got)
	}
}

// points answers with words written in advance.
func points(words string, disk *fakeDisk) (*Points, *bytes.Buffer) {
	var ctl bytes.Buffer
	return &Points{Phases: []string{"root.d"}, Host: control.New(&ctl, strings.NewReader(words), io.Discard),
		Disk: "/build", Freeze: disk.freeze}, &ctl
}

func TestPointWords(t *testing.T) {
	disk := &fakeDisk{}
	p, ctl := points("go\n", disk)
	if err := p.Point("root.d", ""); err != nil || len(disk.events) != 0 {
		t.Errorf("go: %v, disk %q", err, disk.events)
	}
	if m, err := api.ReadMessage(ctl); err != nil || m.Point == nil || *m.Point != (api.Point{Phase: "root.d"}) {
		t.Errorf("told %+v, %v", m, err)
	}
	p, _ = points("maybe\n", disk)
	if err := p.Point("root.d", "10-x"); err == nil || err.Error() != `at root.d/10-x the host said "maybe"` {
		t.Errorf("an unknown word: %v", err)
	}
	p, _ = points("keep\n", disk)
	err := p.Point("root.d", "")
	if err == nil || !strings.HasPrefix(err.Error(), "waiting for the host's word at root.d: the host went away: ") {
		t.Errorf("the host gone while keeping: %v", err)
	}
	if got := strings.Join(disk.events, ", "); got != "freeze /build, thaw" {
		t.Errorf("a disk the host went away from stays frozen: %s", got)
	}
}

// A disk that cannot be frozen is not kept: the host hears why and
// says go on.
func TestPointUnfrozen(t *testing.T) {
	p, ctl := points("keep\ngo\n", &fakeDisk{refused: errors.New("freeze /build: operation not supported")})
	if err := p.Point("root.d", ""); err != nil {
		t.Fatal(err)
	}
	api.ReadMessage(ctl) // the point
	m, err := api.ReadMessage(ctl)
	if err != nil || m.Checkpoint == nil || m.Checkpoint.Unfrozen != "freeze /build: operation not supported" {
		t.Errorf("told %+v, %v", m, err)
	}
}
