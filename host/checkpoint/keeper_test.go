package checkpoint

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/lockfile"
)

// A build resumes from the last phase kept, or inside the next one after
// the last hook kept before what changed, down a chain of layers that
// may pass through steps inside phases; a layer that fails verification
// is removed and the build resumes below it. These make real qcow2
// layers with qemu-img, as a build's would be, without a VM.
func TestResumeInsideAPhase(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (scripts/install-deps.sh installs it)")
	}
	c := struct {
		Store  *Store
		Limits Limits
	}{Store: &Store{Dir: filepath.Join(t.TempDir(), "checkpoints")}, Limits: Limits{MaxAge: time.Hour}}
	files := map[string]string{
		"hooks/root.d/10-a":    "root",
		"hooks/install.d/10-x": "x",
		"hooks/install.d/20-y": "y",
		"hooks/install.d/30-z": "z",
	}
	// start plans a build of files and finds where it resumes; rec
	// hears of the downloads it starts with.
	rec := &lockfile.Recorder{}
	start := func(files map[string]string, admits func([]lockfile.Download) error) (*api.Spec, *Keeper, string) {
		t.Helper()
		spec := &api.Spec{ImageName: "img", Elements: []string{"e"}, Arch: "amd64"}
		steps, err := StepInputs(spec, nil, elementsTar(t, files))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		rec = &lockfile.Recorder{}
		k, err := StartKeeper(context.Background(), c.Store, c.Limits, Build{Spec: spec, Steps: steps, ScratchSize: 64 << 20, Out: &out, Downloads: rec, Admits: admits})
		if err != nil {
			t.Fatal(err)
		}
		return spec, k, out.String()
	}
	spec, k, _ := start(files, nil)
	if spec.Resume != "" || !slices.Equal(k.names(), []string{"root.d", "install.d/10-x", "install.d/20-y", "install.d"}) {
		t.Fatalf("a first build resumes after %q and may keep %v", spec.Resume, k.names())
	}
	byName := map[string]*Step{}
	for _, s := range k.order {
		byName[s.name()] = s
	}
	k.Close()

	// Kept as a build whose 10-x was quick would have: root.d, then
	// install.d/20-y, then install.d on it.
	sess, err := c.Store.Open()
	if err != nil {
		t.Fatal(err)
	}
	var below *Meta
	metas := map[string]*Meta{}
	var downloads []lockfile.Download // each step's, and those before
	for _, name := range []string{"root.d", "install.d/20-y", "install.d"} {
		// (named in the order they come, as Downloads sorts them)
		downloads = append(downloads, lockfile.Download{URL: "http://mirror.example/pool/" + strconv.Itoa(len(downloads)) + ".deb", Size: 1, SHA256: strings.Repeat("0", 64)})
		s := byName[name]
		l, err := sess.NewLayer(below, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		m := &Meta{Key: s.key, Base: s.base, Phase: name, Made: time.Now(), Elements: []string{"e"}, Inputs: s.inputs, Downloads: slices.Clone(downloads)}
		if below != nil {
			m.Parent, m.Backing = below.Key, below.Layer
		}
		if err := sess.Publish(l, m); err != nil {
			t.Fatal(err)
		}
		below, metas[name] = m, m
	}
	sess.Close()

	for _, tc := range []struct {
		name    string
		changes map[string]string
		resume  string
		chain   int
		say     []string
		admits  func([]lockfile.Download) error
	}{
		{name: "nothing changed", resume: "install.d", chain: 3},
		{name: "the last hook", changes: map[string]string{"hooks/install.d/30-z": "z2"}, resume: "install.d/20-y", chain: 2,
			say: []string{"dibvm: resuming after install.d/20-y from checkpoint " + Short(metas["install.d/20-y"].Key),
				"dibvm: no checkpoint after install.d: changed since checkpoint " + Short(metas["install.d"].Key) + ": hooks/install.d/30-z (changed)"}},
		// 10-x was not kept: back to the phase before.
		{name: "the hook kept after", changes: map[string]string{"hooks/install.d/20-y": "y2"}, resume: "root.d", chain: 1,
			say: []string{"dibvm: resuming after root.d from checkpoint ", "hooks/install.d/20-y (changed)"}},
		// A build held to a lock file that does not name what install.d
		// downloaded; the checkpoint stays, for other builds.
		{name: "a download the lock does not name", resume: "install.d/20-y", chain: 2,
			admits: func(ds []lockfile.Download) error {
				for _, d := range ds {
					if strings.HasSuffix(d.URL, "/2.deb") {
						return errors.New(d.URL + ", which the lock file does not name")
					}
				}
				return nil
			},
			say: []string{"dibvm: no checkpoint after install.d: checkpoint " + Short(metas["install.d"].Key) + " was made with http://mirror.example/pool/2.deb, which the lock file does not name"}},
		{name: "nothing changed, again", resume: "install.d", chain: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, k, out := start(changed(files, tc.changes), tc.admits)
			defer k.Close()
			if spec.Resume != tc.resume || len(k.chain) != tc.chain {
				t.Errorf("resumes after %q on %d layers, want %q on %d\n%s", spec.Resume, len(k.chain), tc.resume, tc.chain, out)
			}
			if got := rec.Downloads(); !slices.Equal(got, downloads[:tc.chain]) {
				t.Errorf("starts with the downloads %v, want those of the checkpoint resumed from", got)
			}
			for _, l := range tc.say {
				if !strings.Contains(out, l) {
					t.Errorf("the build does not say %q:\n%s", l, out)
				}
			}
			if want := []string{"install.d"}; tc.resume != "install.d" && !slices.Equal(spec.Checkpoints, want) {
				t.Errorf("still to keep: phases %v, want %v", spec.Checkpoints, want)
			}
		})
	}

	// A damaged layer inside the phase: removed, with what sits on it.
	path := c.Store.Path(metas["install.d/20-y"])
	os.Chmod(path, 0o644)
	if err := os.Truncate(path, metas["install.d/20-y"].Size-512); err != nil {
		t.Fatal(err)
	}
	spec, k, out := start(files, nil)
	k.Close()
	if spec.Resume != "root.d" || !strings.Contains(out, "it was removed") {
		t.Errorf("with install.d/20-y damaged, resumes after %q:\n%s", spec.Resume, out)
	}
	for _, name := range []string{"install.d/20-y", "install.d"} {
		if _, err := os.Stat(filepath.Join(c.Store.Dir, metas[name].Key+".json")); err == nil {
			t.Errorf("checkpoint %s is still there", name)
		}
	}
}
