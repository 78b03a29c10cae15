package build

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

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
	c = &control{breaks: set, types: types, diskSize: disk,
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
		api.Message{Result: &api.Result{ImageSize: 1 << 30, TarOffset: 1 << 30, TarSize: 1 << 20}},
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
		{"a failure in no phase", "", nil, []api.Message{fail(api.Failure{Phase: "../../etc", Script: "x"})}, "not a phase"},
		{"a failure of no hook", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x/../../y"})}, "not a hook's name"},
		{"a failure with a huge tail", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x", Tail: make([]string, 1000)})}, "1000 lines"},
		{"a failure status out of range", "", nil, []api.Message{fail(api.Failure{Phase: "install.d", Script: "x", Status: 1 << 20})}, "exit status"},
		{"two final messages", "", []string{"tar"}, []api.Message{{Error: "x"}, img(api.Result{TarSize: 10240})}, "after the build's final message"},
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

// A guest may ask to keep its tree only at the steps the host asked for,
// in order, each once, and with bounded news of its APT suites; inside a
// phase, only after the hook it last said it started.
func TestControlCheckpoints(t *testing.T) {
	cp := func(phase string, suites ...api.Suite) api.Message {
		phase, hook, _ := strings.Cut(phase, "/")
		return api.Message{Checkpoint: &api.Checkpoint{Phase: phase, Hook: hook, Suites: suites}}
	}
	hook := func(phase, script string) api.Message {
		return api.Message{Hook: &api.Hook{Phase: phase, Script: script}}
	}
	many := make([]api.Suite, maxSuites+1)
	for _, tc := range []struct {
		name string
		msgs []api.Message
		kept []string
		err  string // "" for a build that goes on
	}{
		{"in order", []api.Message{cp("root.d"), cp("install.d"), cp("post-install.d")}, []string{"root.d", "install.d", "post-install.d"}, ""},
		{"one left out", []api.Message{cp("root.d"), cp("post-install.d")}, []string{"root.d", "post-install.d"}, ""},
		{"twice", []api.Message{cp("root.d"), cp("root.d")}, []string{"root.d"}, `after "root.d", which is not a step still to keep`},
		{"backwards", []api.Message{cp("install.d"), cp("root.d")}, []string{"install.d"}, `after "root.d"`},
		{"not asked for", []api.Message{cp("finalise.d")}, nil, `after "finalise.d"`},
		{"too many suites", []api.Message{cp("root.d", many...)}, nil, "more than 32"},
		{"a long suite", []api.Message{cp("root.d", api.Suite{Name: strings.Repeat("x", 300)})}, nil, "more than 256 bytes"},
		{"inside a phase", []api.Message{cp("root.d"), hook("install.d", "10-a"), cp("install.d/10-a"), hook("install.d", "20-b"), hook("install.d", "30-c"), cp("install.d/30-c"), cp("install.d")},
			[]string{"root.d", "install.d/10-a", "install.d/30-c", "install.d"}, ""},
		{"after a later hook started", []api.Message{hook("install.d", "10-a"), hook("install.d", "20-b"), cp("install.d/10-a")}, nil, `hook "10-a" of install.d, which is not the hook it last started`},
		{"after a hook never started", []api.Message{cp("install.d/10-a")}, nil, `hook "10-a"`},
		{"hook of no phase", []api.Message{hook("../etc", "10-a")}, nil, `a hook of "../etc", which is not a phase`},
		{"not a hook's name", []api.Message{hook("install.d", "../x")}, nil, `runs "../x"`},
		{"a step not the build's", []api.Message{{Step: &api.Step{Name: "rm -rf"}}}, nil, `step "rm -rf"`},
		{"a flood of steps", slices.Repeat([]api.Message{{Step: &api.Step{Name: "install.d"}}}, maxSteps+1), nil, "more than 20000 step"},
		{"a hook not asked for", []api.Message{hook("install.d", "20-b"), cp("install.d/20-b")}, nil, `after "install.d/20-b"`},
		{"back inside a phase", []api.Message{hook("install.d", "30-c"), cp("install.d/30-c"), hook("install.d", "10-a"), cp("install.d/10-a")}, []string{"install.d/30-c"}, `after "install.d/10-a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			for _, m := range tc.msgs {
				api.WriteMessage(&buf, m)
			}
			var kept []string
			stopped := false
			c := &control{checkpoints: []string{"root.d", "install.d/10-a", "install.d/30-c", "install.d", "post-install.d"}, diskSize: disk,
				onCheckpoint: func(cp *api.Checkpoint) { kept = append(kept, api.CheckpointName(cp.Phase, cp.Hook)) },
				stop:         func() { stopped = true },
			}
			c.read(&buf)
			if strings.Join(kept, ",") != strings.Join(tc.kept, ",") {
				t.Errorf("kept after %v, want %v", kept, tc.kept)
			}
			switch {
			case tc.err == "" && (stopped || c.err != nil):
				t.Errorf("stopped: %v", c.err)
			case tc.err != "" && (!stopped || c.err == nil || !strings.Contains(c.err.Error(), tc.err)):
				t.Errorf("stopped=%v err=%v, want %q", stopped, c.err, tc.err)
			}
		})
	}
}
