package main_test

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkpointBuild is a store of checkpoints and a copy of the test
// elements that a test may change, with a build of tiny-os and
// checkpoint-steps that says what it ran.
type checkpointBuild struct {
	t        *testing.T
	store    string
	elements string
	out      string
}

func newCheckpointBuild(t *testing.T) *checkpointBuild {
	needVM(t)
	dir := t.TempDir()
	c := &checkpointBuild{t: t, store: filepath.Join(dir, "checkpoints"), elements: filepath.Join(dir, "elements"), out: dir}
	if err := os.MkdirAll(c.elements, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"tiny-os", "checkpoint-steps"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(testElements(t), e), c.elements+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	return c
}

// built is one build's output: the tree's files and the lines of
// steps.log, one per hook that ran, with the time it ran: root.d,
// pre-install.d, install.d's slow hook, install.d's other, post-install.d.
type built struct {
	files  map[string]string
	steps  []string
	stdout string
}

func (c *checkpointBuild) build(name string, env ...string) built {
	c.t.Helper()
	out := filepath.Join(c.out, name, "img")
	env = append([]string{"ELEMENTS_PATH=" + c.elements, "DIBVM_CHECKPOINTS_DIR=" + c.store}, env...)
	r := dibvm(c.t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "tiny-os", "checkpoint-steps")
	if r.code != 0 {
		c.t.Fatalf("build %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, r.code, r.stdout, r.stderr)
	}
	files := readTar(c.t, out+".tar")
	return built{files: files, steps: strings.Split(strings.TrimSpace(files["steps.log"]), "\n"), stdout: r.stdout}
}

// edit appends a comment to one of checkpoint-steps' files.
func (c *checkpointBuild) edit(file string) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.elements, "checkpoint-steps", file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("# changed\n")
}

// meta is what the test reads of a checkpoint's description.
type meta struct {
	Key, Parent, Phase, Layer string
}

func (c *checkpointBuild) metas() []meta {
	c.t.Helper()
	paths, _ := filepath.Glob(filepath.Join(c.store, "*.json"))
	var out []meta
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			c.t.Fatal(err)
		}
		var m meta
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func wantLines(t *testing.T, what, stdout string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(stdout, l) {
			t.Errorf("%s: the output lacks %q:\n%s", what, l, checkpointLines(stdout))
		}
	}
}

// checkpointLines are dibvm's own lines about checkpoints.
func checkpointLines(stdout string) string {
	var out []string
	for _, l := range strings.Split(unstamp(stdout), "\n") {
		if strings.Contains(l, "checkpoint ") || strings.Contains(l, "kept the tree") || strings.HasPrefix(l, "Resuming") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A rebuild resumes from the last phase whose inputs are unchanged, or
// inside the next one after its last slow hook before the change, runs
// the rest, and gives the tree a build from the start gives; a change to
// what shaped root.d starts from the beginning.
func TestCreateResumesFromCheckpoints(t *testing.T) {
	c := newCheckpointBuild(t)
	cold := c.build("cold")
	wantLines(t, "cold build", cold.stdout,
		"dibvm: no checkpoint after root.d: none made yet for these elements",
		"dibvm: kept the tree after root.d (", "pre-install.d (", "install.d/40-slow (", "install.d (", "post-install.d (")
	if len(cold.steps) != 5 {
		t.Fatalf("steps.log of the cold build: %q", cold.steps)
	}

	// Nothing changed: every phase is skipped, and the tree is the one
	// the cold build made, file for file.
	same := c.build("same")
	wantLines(t, "rebuild", same.stdout, "dibvm: resuming after post-install.d from checkpoint ", "Resuming after post-install.d")
	if strings.Contains(same.stdout, "Running hooks from /tmp/in_target.d/install.d") {
		t.Error("the rebuild ran install.d")
	}
	if !maps.Equal(same.files, cold.files) {
		t.Errorf("the resumed build's tree differs from the cold build's:\n%v\n%v", slices.Sorted(maps.Keys(same.files)), slices.Sorted(maps.Keys(cold.files)))
	}
	// Without checkpoints, every hook runs again: the same files, only
	// the times in steps.log differ.
	fresh := c.build("fresh", "DIB_NO_CHECKPOINTS=1")
	if checkpointLines(fresh.stdout) != "" || len(fresh.steps) != 5 || fresh.steps[0] == cold.steps[0] {
		t.Errorf("DIB_NO_CHECKPOINTS=1: steps %q\n%s", fresh.steps, checkpointLines(fresh.stdout))
	}
	delete(fresh.files, "steps.log")
	withoutLog := maps.Clone(cold.files)
	delete(withoutLog, "steps.log")
	if !maps.Equal(fresh.files, withoutLog) {
		t.Error("a build without checkpoints makes other files than one with them")
	}

	// One install.d hook changed: the build goes on after the slow hook
	// before it, which it does not run again.
	c.edit("install.d/50-steps")
	changed := c.build("install-changed")
	wantLines(t, "install.d changed", changed.stdout,
		"dibvm: resuming after install.d/40-slow from checkpoint ",
		"dibvm: no checkpoint after install.d: changed since checkpoint ",
		"hooks/install.d/50-steps (changed)",
		"Resuming after install.d/40-slow")
	if !slices.Equal(changed.steps[:3], cold.steps[:3]) || changed.steps[3] == cold.steps[3] || changed.steps[4] == cold.steps[4] {
		t.Errorf("after a change to install.d's last hook, steps ran %q; the cold build's %q", changed.steps, cold.steps)
	}
	// The slow hook changed: root.d and pre-install.d are kept.
	c.edit("install.d/40-slow")
	slow := c.build("slow-changed")
	wantLines(t, "install.d's slow hook changed", slow.stdout,
		"dibvm: resuming after pre-install.d from checkpoint ",
		"hooks/install.d/40-slow (changed)")
	if !slices.Equal(slow.steps[:2], cold.steps[:2]) || slow.steps[2] == cold.steps[2] {
		t.Errorf("after a change to install.d's slow hook, steps ran %q; the cold build's %q", slow.steps, cold.steps)
	}

	// Each of these shapes root.d: nothing is kept.
	for _, tc := range []struct {
		name, file string
		env        []string
		why        string
	}{
		{name: "environment.d", file: "environment.d/10-steps", why: "hooks/environment.d/10-steps (changed)"},
		{name: "root.d hook", file: "root.d/50-steps", why: "hooks/root.d/50-steps (changed)"},
		{name: "DIB_RELEASE", env: []string{"DIB_RELEASE=trixie"}, why: "variable DIB_RELEASE (new)"},
		{name: "mirror", env: []string{"DIB_DISTRIBUTION_MIRROR=http://[::1]:9/debian", "DIBVM_ALLOW_NET=[::1]:9"}, why: "variable DIB_DISTRIBUTION_MIRROR (new)"},
	} {
		if tc.file != "" {
			c.edit(tc.file)
		}
		b := c.build(strings.ReplaceAll(tc.name, " ", "-"), tc.env...)
		wantLines(t, tc.name, b.stdout, "dibvm: no checkpoint after root.d: changed since checkpoint ", tc.why)
		if strings.Contains(b.stdout, "resuming") || b.steps[0] == cold.steps[0] {
			t.Errorf("%s: resumed (steps %q)", tc.name, b.steps)
		}
	}
}

// A checkpoint whose layer was cut short or changed is found out, said,
// and made again.
func TestCreateRebuildsDamagedCheckpoint(t *testing.T) {
	c := newCheckpointBuild(t)
	cold := c.build("cold")
	var install meta
	for _, m := range c.metas() {
		if m.Phase == "install.d" {
			install = m
		}
	}
	layer := filepath.Join(c.store, install.Layer)
	info, err := os.Stat(layer)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(layer, 0o644)
	if err := os.Truncate(layer, info.Size()-4096); err != nil {
		t.Fatal(err)
	}
	b := c.build("damaged")
	wantLines(t, "damaged checkpoint", b.stdout,
		"dibvm: resuming after install.d/40-slow from checkpoint ",
		"dibvm: no checkpoint after install.d: checkpoint "+install.Key[:12]+" after install.d: its layer "+install.Layer+" is not what was written",
		"it was removed",
		"dibvm: kept the tree after install.d (", "post-install.d (")
	if !slices.Equal(b.steps[:3], cold.steps[:3]) || b.steps[3] == cold.steps[3] {
		t.Errorf("steps %q after the damaged checkpoint; cold %q", b.steps, cold.steps)
	}
	again := c.build("again")
	wantLines(t, "after the damage", again.stdout, "dibvm: resuming after post-install.d")
	if !slices.Equal(again.steps, b.steps) {
		t.Errorf("steps %q, want those of the build that remade the checkpoint, %q", again.steps, b.steps)
	}

	// dibvm cache ls shows the chain; prune removes what is past its
	// limits, and --all everything.
	env := []string{"DIBVM_CHECKPOINTS_DIR=" + c.store}
	ls := dibvm(t, env, time.Minute, "cache", "ls")
	wantLines(t, "cache ls", ls.stdout, "CHECKPOINT", "root.d", "post-install.d", "checkpoint-steps tiny-os", "5 checkpoints, ")
	if ls.code != 0 {
		t.Errorf("cache ls: exit %d\n%s", ls.code, ls.stderr)
	}
	kept := dibvm(t, env, time.Minute, "cache", "prune")
	wantLines(t, "cache prune", kept.stdout, "Removed 0 checkpoints and 0 leftover files")
	all := dibvm(t, env, time.Minute, "cache", "prune", "--all")
	wantLines(t, "cache prune --all", all.stdout, "Removed 5 checkpoints")
	left, _ := filepath.Glob(filepath.Join(c.store, "*"))
	for _, f := range left {
		if n := filepath.Base(f); n != "lock" && n != "meta.lock" {
			t.Errorf("left in the store after prune --all: %s", n)
		}
	}
}

// Two builds of the same inputs at once: one keeps each checkpoint, the
// other builds on without keeping, and the store holds one whole chain.
func TestCreateConcurrentCheckpoints(t *testing.T) {
	c := newCheckpointBuild(t)
	var wg sync.WaitGroup
	results := make([]built, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(c.out, "concurrent"+string(rune('a'+i)), "img")
			r, err := runDibvm([]string{"ELEMENTS_PATH=" + c.elements, "DIBVM_CHECKPOINTS_DIR=" + c.store}, 15*time.Minute,
				"create", "-n", "-t", "tar", "-o", out, "tiny-os", "checkpoint-steps")
			if err != nil || r.code != 0 {
				t.Errorf("concurrent build %d: %v exit %d\n%s", i, err, r.code, r.stderr)
				return
			}
			files := readTar(t, out+".tar")
			results[i] = built{files: files, steps: strings.Split(strings.TrimSpace(files["steps.log"]), "\n"), stdout: r.stdout}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ms := c.metas()
	var phases []string
	layers := map[string]bool{}
	for _, m := range ms {
		phases = append(phases, m.Phase)
		layers[m.Layer] = true
	}
	slices.Sort(phases)
	if want := []string{"install.d", "install.d/40-slow", "post-install.d", "pre-install.d", "root.d"}; !slices.Equal(phases, want) {
		t.Errorf("checkpoints after %v, want one of each of %v", phases, want)
	}
	files, _ := filepath.Glob(filepath.Join(c.store, "*.qcow2"))
	for _, f := range files {
		if !layers[filepath.Base(f)] {
			t.Errorf("a layer no checkpoint names was left: %s", f)
		}
	}
	third := c.build("third")
	wantLines(t, "after the concurrent builds", third.stdout, "dibvm: resuming after post-install.d")
	if !slices.Equal(third.steps, results[0].steps) && !slices.Equal(third.steps, results[1].steps) {
		t.Errorf("resumed steps %q are neither build's: %q, %q", third.steps, results[0].steps, results[1].steps)
	}
}
