package session

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
)

const disk = 64 << 30

// run feeds msgs to a control that allows break (a break= value) for a
// build of types, and returns it with the shells it opened and whether
// it stopped the build.
func runControl(t *testing.T, brk string, types []string, msgs ...api.Message) (c *control, shells []string, stopped bool) {
	t.Helper()
	set, err := breakpoint.Parse(brk)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := api.WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("and then some bytes nobody reads")
	c = &control{breaks: set, types: types, image: "img", diskSize: disk,
		onBreak: func(b api.Break) { shells = append(shells, b.Point) },
		stop:    func() { stopped = true },
	}
	c.read(&buf)
	return c, shells, stopped
}

func TestControlAcceptsABuild(t *testing.T) {
	c, shells, stopped := runControl(t, "after-install,before-finalise", []string{"qcow2", "tar"},
		api.Message{Break: &api.Break{Point: "after-install", Chroot: true}},
		api.Message{Break: &api.Break{Point: "before-finalise", Chroot: true}},
		api.Message{Result: &api.Result{ImageSize: 1 << 30, TarOffset: 1 << 30, TarSize: 1 << 20, Emitted: []api.EmittedFile{
			{Name: "img.vmlinuz", Phase: "cleanup.d", Offset: 1<<30 + 1<<20, Size: 100},
			{Name: "img-boot.iso", Phase: "cleanup.d", Offset: 1<<30 + 1<<20 + 100, Size: 0},
		}}},
	)
	// The trailing garbage is after the final message: refused too.
	if !stopped || !strings.Contains(c.err.Error(), "not the control magic") {
		t.Errorf("bytes after the result: stopped=%v err=%v", stopped, c.err)
	}
	if strings.Join(shells, ",") != "after-install,before-finalise" || c.result == nil {
		t.Errorf("shells %v, result %+v", shells, c.result)
	}
}

// Every message a hostile guest could forge is refused, stops the build,
// and opens no shell.
func TestControlRefuses(t *testing.T) {
	img := func(r api.Result) api.Message { return api.Message{Result: &r} }
	fail := func(f api.Failure) api.Message { return api.Message{Failure: &f} }
	emit := func(files ...api.EmittedFile) []api.Message {
		for i := range files {
			if files[i].Phase == "" {
				files[i].Phase = "cleanup.d"
			}
			if files[i].Offset == 0 {
				files[i].Offset = 10240 + int64(i)*100
			}
		}
		return []api.Message{img(api.Result{TarSize: 10240, Emitted: files})}
	}
	brk := func(p string, chroot bool) api.Message {
		return api.Message{Break: &api.Break{Point: p, Chroot: chroot}}
	}
	for _, tc := range []struct {
		name  string
		brk   string
		types []string
		msgs  []api.Message
		want  string
	}{
		{"a shell nobody asked for", "", nil, []api.Message{brk("before-install", true)}, `shell at "before-install", where break= did not ask`},
		{"a shell elsewhere", "after-error", nil, []api.Message{brk("after-root", false)}, "did not ask"},
		{"a made-up point", "after-install", nil, []api.Message{brk("after-install; rm -rf ~", true)}, "did not ask"},
		{"a shell twice", "after-install", nil, []api.Message{brk("after-install", true), brk("after-install", true)}, "a second time"},
		{"a shell outside the chroot", "after-install", nil, []api.Message{brk("after-install", false)}, "wrong place"},
		{"an image beyond the disk", "", []string{"qcow2"}, []api.Message{img(api.Result{ImageSize: disk + 1})}, "beyond the"},
		{"an offset that wraps", "", []string{"tar"}, []api.Message{img(api.Result{TarOffset: 1 << 62, TarSize: 1<<63 - 1})}, "beyond the"},
		{"a negative size", "", []string{"tar"}, []api.Message{img(api.Result{TarOffset: 10, TarSize: -5})}, "length -5"},
		{"overlapping outputs", "", []string{"qcow2", "tar"}, []api.Message{img(api.Result{ImageSize: 1 << 20, TarOffset: 4096, TarSize: 1 << 20})}, "over the disk image"},
		{"manifests over the image", "", []string{"raw"}, []api.Message{img(api.Result{ImageSize: 1 << 20, ManifestsOffset: 0, ManifestsSize: 10})}, "manifests over the disk image"},
		{"an output not asked for", "", []string{"tar"}, []api.Message{img(api.Result{ImageSize: 1 << 20, TarOffset: 1 << 20, TarSize: 10240})}, "disk image, which was not asked for"},
		{"an output missing", "", []string{"qcow2", "squashfs"}, []api.Message{img(api.Result{ImageSize: 1 << 20})}, "no squashfs"},
		{"huge manifests", "", []string{"tar"}, []api.Message{img(api.Result{TarSize: 10240, ManifestsOffset: 10240, ManifestsSize: 1 << 30})}, "manifests are"},
		{"a package list over the tar", "", []string{"tar"}, []api.Message{img(api.Result{TarSize: 10240, PackagesOffset: 512, PackagesSize: 100})}, "package list over the tar"},
		{"a huge package list", "", []string{"tar"}, []api.Message{img(api.Result{TarSize: 10240, PackagesOffset: 10240, PackagesSize: 1 << 30})}, "package list is"},
		{"a failure in no phase", "", nil, []api.Message{fail(api.Failure{Phase: "../../etc", Script: "x"})}, "not a phase"},
		{"a failure of no hook", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x/../../y"})}, "not a hook's name"},
		{"a failure with a huge tail", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x", Tail: make([]string, 1000)})}, "1000 lines"},
		{"a failure status out of range", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x", Status: 1 << 20})}, "exit status"},
		{"two final messages", "", []string{"tar"}, []api.Message{{Error: "x"}, img(api.Result{TarSize: 10240})}, "after the build's final message"},
		{"a file beside the image of another name", "", []string{"tar"}, emit(api.EmittedFile{Name: "other.kernel"}), `"other.kernel" is not named img.SUFFIX`},
		{"a file beside the image up a directory", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.x/../../../.bashrc"}), "holds"},
		{"a file beside the image with escapes", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.\x1b[2J"}), "only letters, digits"},
		{"a file beside the image twice", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.k"}, api.EmittedFile{Name: "img.k"}), "twice"},
		{"a file beside the image of no phase", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.k", Phase: "evil.d"}), "no phase"},
		{"a file beside the image too large", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.k", Size: api.MaxEmittedFile + 1}), "more than"},
		{"a file beside the image over the tar", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.k", Offset: 512, Size: 10}), `"img.k" beside the image over the tar`},
		{"a file beside the image beyond the disk", "", []string{"tar"}, emit(api.EmittedFile{Name: "img.k", Offset: disk - 1, Size: 10}), "beyond the"},
		{"too many files beside the image", "", []string{"tar"}, emit(make([]api.EmittedFile, api.MaxEmittedFiles+1)...), "more than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, shells, stopped := runControl(t, tc.brk, tc.types, tc.msgs...)
			var ve *ViolationError
			if !stopped || !errors.As(c.err, &ve) || !strings.Contains(c.err.Error(), tc.want) {
				t.Errorf("stopped=%v err=%v, want a violation saying %q", stopped, c.err, tc.want)
			}
			if len(shells) > 0 && tc.name != "a shell twice" {
				t.Errorf("opened shells %v", shells)
			}
		})
	}
}

// A failure's report shows the hook's output as text: nothing in it can
// drive the user's terminal.
func TestHookErrorNeutralisesOutput(t *testing.T) {
	e := &HookError{Element: "evil", Failure: &api.Failure{Phase: "install.d", Script: "50-x", Status: 1,
		Tail: []string{"\x1b]0;pwned\x07\x1b[2J", strings.Repeat("y", 10000)}}}
	msg := e.Error()
	if strings.ContainsAny(msg, "\x1b\x07") {
		t.Errorf("control characters reached the report: %q", msg)
	}
	if !strings.Contains(msg, "^[]0;pwned^G^[[2J") || len(msg) > 2000 {
		t.Errorf("report: %q", msg)
	}
}

// The hooks of the build the checkpoint tests run: install.d's 40-link
// is a symlink, which may not run.
var testHooks = map[string][]elements.MergedHook{
	"root.d":         {{Name: "10-root", Regular: true}},
	"install.d":      {{Name: "10-a", Regular: true}, {Name: "20-b", Regular: true}, {Name: "30-c", Regular: true}, {Name: "40-link"}, {Name: "50-d", Regular: true}},
	"post-install.d": {{Name: "10-p", Regular: true}},
	"finalise.d":     {{Name: "10-f", Regular: true}, {Name: "20-g", Regular: true}},
}

// Control messages of the checkpoint tests.
func start(point string) api.Message {
	phase, hook, _ := strings.Cut(point, "/")
	return api.Message{Hook: &api.Hook{Phase: phase, Script: hook}}
}

func done(point string) api.Message {
	phase, hook, _ := strings.Cut(point, "/")
	return api.Message{Hook: &api.Hook{Phase: phase, Script: hook, Done: true}}
}

func point(name string) api.Message {
	phase, hook, _ := strings.Cut(name, "/")
	return api.Message{Point: &api.Point{Phase: phase, Hook: hook}}
}

func frozen(name string, suites ...api.Suite) api.Message {
	phase, hook, _ := strings.Cut(name, "/")
	return api.Message{Checkpoint: &api.Checkpoint{Phase: phase, Hook: hook, Suites: suites}}
}

// ran is a hook that started and finished.
func ran(names ...string) []api.Message {
	var out []api.Message
	for _, n := range names {
		out = append(out, start(n), done(n))
	}
	return out
}

func seq(parts ...any) []api.Message {
	var out []api.Message
	for _, p := range parts {
		switch p := p.(type) {
		case api.Message:
			out = append(out, p)
		case []api.Message:
			out = append(out, p...)
		}
	}
	return out
}

// checkpointRun is what a control made of the checkpoint tests' messages.
type checkpointRun struct {
	c       *control
	kept    []string // where the build was told to come to rest and did
	words   []string // the host's replies
	stopped bool
}

// runCheckpoints feeds msgs to a control of testHooks that keeps the
// tree at each point of keepAt it reaches, resumed at resume.
func runCheckpoints(t *testing.T, resume string, keepAt []string, msgs []api.Message) *checkpointRun {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := api.WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := &checkpointRun{}
	r.c = &control{diskSize: disk,
		seq:          newSequence(testHooks, resume),
		wants:        func(p string, _ time.Duration) bool { return slices.Contains(keepAt, p) },
		onCheckpoint: func(cp *api.Checkpoint) { r.kept = append(r.kept, api.CheckpointName(cp.Phase, cp.Hook)) },
		reply:        func(w string) { r.words = append(r.words, w) },
		stop:         func() { r.stopped = true },
	}
	r.c.read(&buf)
	return r
}

// A build whose hooks run as the host merged them keeps its tree where
// the host says, and only there.
func TestControlCheckpoints(t *testing.T) {
	keepAt := []string{"root.d", "install.d/10-a", "install.d"}
	r := runCheckpoints(t, "", keepAt, seq(
		ran("root.d/10-root"), point("root.d"), frozen("root.d"),
		ran("install.d/10-a"), point("install.d/10-a"), frozen("install.d/10-a"),
		ran("install.d/20-b"), point("install.d/20-b"),
		ran("install.d/30-c"), point("install.d/30-c"),
		// 40-link, a symlink, did not run.
		ran("install.d/50-d"), point("install.d"), frozen("install.d"),
		ran("post-install.d/10-p"), point("post-install.d"),
		ran("finalise.d/10-f", "finalise.d/20-g"),
	))
	if r.stopped || r.c.err != nil {
		t.Fatalf("stopped: %v", r.c.err)
	}
	if !slices.Equal(r.kept, keepAt) {
		t.Errorf("kept after %v, want %v", r.kept, keepAt)
	}
	want := []string{"keep", "go", "keep", "go", "go", "go", "keep", "go", "go"}
	if !slices.Equal(r.words, want) {
		t.Errorf("the host said %v, want %v", r.words, want)
	}
}

// The host keeps a tree only at a point it saw the build reach in order,
// and only where it said keep: whatever a hook writes to the control
// stream, it cannot have the tree kept at a point before itself, and
// once anything is out of order the build stops and keeps nothing more.
func TestControlRefusesCheckpoints(t *testing.T) {
	upTo10a := seq(ran("root.d/10-root"), point("root.d"), ran("install.d/10-a"))
	many := make([]api.Suite, 33)
	for _, tc := range []struct {
		name   string
		resume string
		keepAt []string
		msgs   []api.Message
		kept   []string
		err    string
	}{
		{"a later hook forges an earlier one's start", "", []string{"install.d/10-a"},
			seq(upTo10a, point("install.d/10-a"), frozen("install.d/10-a"), start("install.d/20-b"), start("install.d/10-a"), point("install.d/10-a"), frozen("install.d/10-a")),
			[]string{"install.d/10-a"}, "said it starts install.d/10-a while 20-b still runs"},
		{"a later hook forges an earlier one's whole run", "", []string{"install.d/20-b"},
			seq(upTo10a, point("install.d/10-a"), ran("install.d/20-b"), ran("install.d/10-a"), point("install.d/10-a"), frozen("install.d/10-a")),
			nil, "starts install.d/10-a, which it had started already"},
		{"a checkpoint nobody asked for", "", nil,
			seq(upTo10a, frozen("install.d/10-a")), nil, `at rest at "install.d/10-a", where the host did not ask`},
		{"a checkpoint where the host said go", "", nil,
			seq(upTo10a, point("install.d/10-a"), frozen("install.d/10-a")), nil, "did not ask to keep"},
		{"a checkpoint elsewhere than asked", "", []string{"install.d/10-a"},
			seq(upTo10a, point("install.d/10-a"), frozen("root.d")), nil, `at rest at "root.d"`},
		{"a hook while the tree comes to rest", "", []string{"install.d/10-a"},
			seq(upTo10a, point("install.d/10-a"), start("install.d/20-b")), nil, `while the host waited for the tree to come to rest at "install.d/10-a"`},
		{"a point while a hook runs", "", []string{"install.d/10-a"},
			seq(ran("root.d/10-root"), start("install.d/10-a"), point("install.d/10-a")), nil, "while 10-a still runs"},
		{"a point after an earlier hook", "", []string{"install.d/10-a"},
			seq(upTo10a, ran("install.d/20-b"), point("install.d/10-a")), nil, "the hook it finished last is not that one"},
		{"a point twice", "", nil,
			seq(upTo10a, point("install.d/10-a"), point("install.d/10-a")), nil, "or it stopped there already"},
		{"the end of a phase twice", "", nil,
			seq(ran("root.d/10-root"), point("root.d"), point("root.d")), nil, "a second time at the end of root.d"},
		{"a hook after the end of its phase", "", nil,
			seq(ran("root.d/10-root"), point("root.d"), start("root.d/10-root")), nil, "had started already"},
		{"a point of no phase to keep", "", nil, seq(point("finalise.d")), nil, "no place to keep the tree"},
		{"back to an earlier phase", "", nil, seq(upTo10a, start("root.d/10-root")), nil, "after it ran install.d"},
		{"the end of a hook not running", "", nil, seq(upTo10a, done("install.d/10-a")), nil, "not the hook running"},
		{"before a resumed build's point", "install.d/20-b", []string{"install.d/10-a"},
			seq(start("install.d/10-a")), nil, "had started already"},
		{"too many suites", "", []string{"root.d"},
			seq(ran("root.d/10-root"), point("root.d"), frozen("root.d", many...)), nil, "more than 32"},
		{"a long suite", "", []string{"root.d"},
			seq(ran("root.d/10-root"), point("root.d"), frozen("root.d", api.Suite{Name: strings.Repeat("x", 300)})), nil, "more than 256 bytes"},
		{"a suite that drives the terminal", "", []string{"root.d"},
			seq(ran("root.d/10-root"), point("root.d"), frozen("root.d", api.Suite{Name: "bookworm", Date: "\x1b]0;pwned\x07"})), nil, "not printable"},
		{"a checkpoint whose phase names the hook", "", []string{"install.d/10-a"},
			seq(upTo10a, point("install.d/10-a"), api.Message{Checkpoint: &api.Checkpoint{Phase: "install.d/10-a"}}), nil, "where the host did not ask"},
		{"hook of no phase", "", nil, seq(api.Message{Hook: &api.Hook{Phase: "../etc", Script: "10-a"}}), nil, `a hook of "../etc", which is not a phase`},
		{"not a hook's name", "", nil, seq(api.Message{Hook: &api.Hook{Phase: "install.d", Script: "../x"}}), nil, `runs "../x"`},
		{"a step not the build's", "", nil, seq(api.Message{Step: &api.Step{Name: "rm -rf"}}), nil, `step "rm -rf"`},
		{"a command step in a build without a command", "", nil, seq(api.Message{Step: &api.Step{Name: api.StepCommand}}), nil, `step "command"`},
		{"a flood of steps", "", nil, slices.Repeat([]api.Message{{Step: &api.Step{Name: "install.d"}}}, maxSteps+1), nil, "more than 20000 step"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCheckpoints(t, tc.resume, tc.keepAt, tc.msgs)
			if !slices.Equal(r.kept, tc.kept) {
				t.Errorf("kept after %v, want %v", r.kept, tc.kept)
			}
			var ve *ViolationError
			if !r.stopped || !errors.As(r.c.err, &ve) || !strings.Contains(r.c.err.Error(), tc.err) {
				t.Errorf("stopped=%v err=%v, want a violation saying %q", r.stopped, r.c.err, tc.err)
			}
		})
	}
}

// A build resumed inside a phase goes on after the hook it was kept at;
// one that could not bring its tree to rest has nothing kept, and goes on.
func TestControlResumesAndUnfrozen(t *testing.T) {
	unfrozen := frozen("install.d/30-c")
	unfrozen.Checkpoint.Unfrozen = "freeze /scratch: operation not supported"
	r := runCheckpoints(t, "install.d/20-b", []string{"install.d/30-c", "install.d"}, seq(
		ran("install.d/30-c"), point("install.d/30-c"), unfrozen,
		ran("install.d/50-d"), point("install.d"), frozen("install.d"),
	))
	if r.stopped || r.c.err != nil {
		t.Fatalf("stopped: %v", r.c.err)
	}
	if !slices.Equal(r.kept, []string{"install.d/30-c", "install.d"}) || !slices.Equal(r.words, []string{"keep", "go", "keep", "go"}) {
		t.Errorf("kept %v, said %v", r.kept, r.words)
	}
}

// A build that runs a hook the host did not merge, or passes over one it
// did, may have had its hooks tree changed by a hook (DIB's install-types
// links hooks into install.d at extra-data.d): it goes on, but the host
// keeps nothing from then on, and says why once.
func TestControlStopsKeepingOffTheList(t *testing.T) {
	upTo10a := seq(ran("root.d/10-root"), point("root.d"), ran("install.d/10-a"))
	// Every point after root.d would be kept, were the build on the list.
	all := []string{"install.d/10-a", "install.d/20-b", "install.d/30-c", "install.d/50-d", "install.d", "post-install.d"}
	for _, tc := range []struct {
		name string
		msgs []api.Message
		why  string
	}{
		{"a hook of no element", seq(upTo10a, ran("install.d/25-new"), point("install.d/25-new"), ran("install.d/20-b"), point("install.d/20-b")),
			"it runs install.d/25-new, which is no hook of the elements"},
		{"a hook passed over", seq(upTo10a, ran("install.d/30-c"), point("install.d/30-c")), "it passed over install.d/20-b"},
		{"a phase whose hooks never ran", seq(ran("install.d/10-a"), point("install.d/10-a"), ran("install.d/20-b"), point("install.d/20-b")), "without running root.d/10-root"},
		{"the end of a phase with hooks not run", seq(upTo10a, point("install.d")), "it ended install.d without running its hook 20-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			for _, m := range tc.msgs {
				api.WriteMessage(&buf, m)
			}
			var notes, words []string
			stopped := false
			c := &control{diskSize: disk, seq: newSequence(testHooks, ""),
				wants:        func(p string, _ time.Duration) bool { return slices.Contains(all, p) },
				onCheckpoint: func(cp *api.Checkpoint) { t.Errorf("kept the tree at %s", api.CheckpointName(cp.Phase, cp.Hook)) },
				onOffList:    func(why string) { notes = append(notes, why) },
				reply:        func(w string) { words = append(words, w) },
				stop:         func() { stopped = true },
			}
			c.read(&buf)
			if stopped || c.err != nil {
				t.Fatalf("stopped: %v", c.err)
			}
			if len(notes) != 1 || !strings.Contains(notes[0], tc.why) {
				t.Errorf("notes %q, want one saying %q", notes, tc.why)
			}
			if slices.Contains(words, "keep") || len(words) < 2 {
				t.Errorf("the host said %v; want go at every point", words)
			}
		})
	}
}

// The command step is the build's own when it runs a command (customize
// with -- COMMAND), and a violation in any other build.
func TestCommandStepOnlyWithACommand(t *testing.T) {
	with := &control{command: true}
	if err := with.checkStep(&api.Step{Name: api.StepCommand}); err != nil {
		t.Errorf("a build with a command: %v", err)
	}
	if err := (&control{}).checkStep(&api.Step{Name: api.StepCommand}); err == nil {
		t.Error("a build without a command ran the command step")
	}
}
