package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/vbauerster/mpb/v8/decor"
)

// clock is a fake clock: each call to now is step later.
type clock struct {
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

// run feeds r a build of two steps, the second with two hooks, and an
// output, one second apart by its clock.
func run(r *Reporter, fail error) *Summary {
	for _, e := range []Event{
		{Kind: BuildStart, Elements: []string{"vm", "debian-minimal"}},
		{Kind: StepStart, Step: Boot},
		{Kind: StepEnd, Step: Boot},
		{Kind: Resumed, Step: "root.d"},
		{Kind: StepStart, Step: "install.d"},
		{Kind: HookStart, Step: "install.d", Hook: "10-a", Element: "a"},
		{Kind: HookEnd, Step: "install.d", Hook: "10-a", Element: "a", Status: OK},
		{Kind: HookStart, Step: "install.d", Hook: "20-b", Element: "b"},
		{Kind: HookEnd, Step: "install.d", Hook: "20-b", Element: "b", Status: OK},
		{Kind: StepEnd, Step: "install.d"},
		{Kind: Kept, Step: "install.d"},
		{Kind: Output, Path: "out/img.qcow2", Size: 3 << 20, SHA256: strings.Repeat("ab", 32)},
	} {
		r.Event(e)
	}
	return r.Finish(fail)
}

func TestJSONEventsMatchTheSchema(t *testing.T) {
	schema, err := jsonschema.NewCompiler().Compile("../../docs/events.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []error{nil, errors.New("the build failed in a hook")} {
		var events, log bytes.Buffer
		r := NewJSON(&events, &log)
		r.now = (&clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), step: time.Second}).now
		run(r, fail)
		var kinds []string
		sc := bufio.NewScanner(&events)
		for sc.Scan() {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(sc.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(v); err != nil {
				t.Errorf("%s: %v", sc.Text(), err)
			}
			var e Event
			json.Unmarshal(sc.Bytes(), &e)
			kinds = append(kinds, string(e.Kind))
			if e.Kind == HookEnd && e.Seconds != 1 {
				t.Errorf("%s: want 1 second, by the host's clock", sc.Text())
			}
		}
		if len(kinds) != 13 || kinds[12] != "build-end" {
			t.Errorf("events %v", kinds)
		}
	}
	// A file hooks wrote beside the image is an output with its phase.
	emitted, _ := json.Marshal(Event{Time: time.Now(), Kind: Output, Path: "out/img.vmlinuz", Size: 8 << 20, SHA256: strings.Repeat("cd", 32), EmittedBy: "cleanup.d"})
	if v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(emitted)); schema.Validate(v) != nil || !strings.Contains(string(emitted), `"emitted_by":"cleanup.d"`) {
		t.Errorf("the schema refuses %s", emitted)
	}
	// The schema is not a schema that takes anything.
	for _, bad := range []string{
		`{"time":"2026-12-03T10:00:00Z","event":"hook-end","step":"install.d","hook":"10-a"}`,
		`{"time":"2026-12-03T10:00:00Z","event":"output","path":"x","size":1,"sha256":"zz"}`,
		`{"time":"2026-12-03T10:00:00Z","event":"build-end","status":"failed"}`,
		`{"time":"2026-12-03T10:00:00Z","event":"step-end","step":"cleanup.d","emitted_by":"cleanup.d"}`,
		`{"time":"2026-12-03T10:00:00Z","event":"progress"}`,
		`{"time":"2026-12-03T10:00:00Z","event":"step-start","step":"boot","extra":1}`,
	} {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if schema.Validate(v) == nil {
			t.Errorf("the schema takes %s", bad)
		}
	}
}

func TestSummary(t *testing.T) {
	r := NewPlain(&bytes.Buffer{})
	r.now = (&clock{t: time.Now(), step: time.Second}).now
	s := run(r, nil)
	s.Outputs = append(s.Outputs, Event{Kind: Output, Path: "out/img.vmlinuz", Size: 8 << 20, SHA256: strings.Repeat("cd", 32), EmittedBy: "cleanup.d"})
	var b bytes.Buffer
	s.Print(&b, "dibvm boot out/img.qcow2")
	want := []string{
		"Built in 12.0s, resumed after root.d.",
		"  boot       1.0s",
		"  install.d  5.0s",
		"  1.0s  install.d/10-a (a)",
		"  out/img.qcow2    3.0 MiB  sha256:abab",
		"  out/img.vmlinuz  8.0 MiB  sha256:cdcd",
		"cdcd  from cleanup.d\n",
		"Try it: dibvm boot out/img.qcow2",
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
}

func TestPlainStampsLinesAndSteps(t *testing.T) {
	var out bytes.Buffer
	r := NewPlain(&out)
	r.now = (&clock{t: time.Now(), step: time.Second}).now
	r.Log().Write([]byte("dib-run-parts Running 10-a\npartial"))
	r.Log().Write([]byte(" line\n"))
	run(r, nil)
	stamp := `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| `
	for _, line := range []string{"dib-run-parts Running 10-a", "partial line", "dibvm: boot took 1.0s", "dibvm: install.d took 5.0s"} {
		if !regexp.MustCompile("(?m)^" + stamp + regexp.QuoteMeta(line) + "$").MatchString(out.String()) {
			t.Errorf("no stamped line %q in:\n%s", line, out.String())
		}
	}
}

func TestEstimateFromTheLastBuild(t *testing.T) {
	timings := &Timings{Dir: filepath.Join(t.TempDir(), "timings")}
	key := TimingsKey("amd64", []string{"qcow2"}, []string{"vm", "debian-minimal"})
	r := NewJSON(&bytes.Buffer{}, &bytes.Buffer{})
	r.Estimating(timings, key)
	if s := r.Status(); s.Estimated {
		t.Fatalf("an estimate with no build before: %+v", s)
	}
	c := &clock{t: time.Now(), step: time.Second}
	r.now = c.now
	run(r, nil)

	// The next build, half way into hook 10-a: it started 5 s into a
	// 12 s build, and took 1 s.
	r = NewJSON(&bytes.Buffer{}, &bytes.Buffer{})
	r.Estimating(timings, key)
	c = &clock{t: time.Now(), step: 0}
	r.now = c.now
	r.Event(Event{Kind: BuildStart, Elements: []string{"vm"}})
	r.Event(Event{Kind: HookStart, Step: "install.d", Hook: "10-a"})
	c.t = c.t.Add(500 * time.Millisecond)
	s := r.Status()
	if !s.Estimated || s.Estimate.Total != 12*time.Second || s.Estimate.Done != 5500*time.Millisecond {
		t.Errorf("estimate %+v, want 5.5 s of 12 s done", s)
	}
	// A hook that runs longer than it did last time holds the estimate
	// at its end, rather than running past it.
	c.t = c.t.Add(time.Hour)
	if s := r.Status(); s.Estimate.Done != 6*time.Second || s.Estimate.Left() != 6*time.Second {
		t.Errorf("estimate %+v, want 6 s of 12 s done", s)
	}
	// Another element set has no estimate.
	other := NewJSON(&bytes.Buffer{}, &bytes.Buffer{})
	other.Estimating(timings, TimingsKey("arm64", []string{"qcow2"}, []string{"vm", "debian-minimal"}))
	if other.Status().Estimated {
		t.Error("an estimate from another element set")
	}
	// A damaged record is no record.
	os.WriteFile(timings.path(key), []byte("{"), 0o644)
	if timings.Load(key) != nil {
		t.Error("a damaged record loaded")
	}
}

func TestMergeKeepsWhatAResumedBuildSkipped(t *testing.T) {
	seg := func(labels ...string) *Record {
		r := &Record{}
		for i, l := range labels {
			r.Segments = append(r.Segments, Segment{Label: l, Seconds: float64(i + 1)})
		}
		return r
	}
	old := seg("boot", "root.d", "install.d/10-a", "install.d/20-b", "finalise.d")
	resumed := seg("boot", "install.d/20-b", "finalise.d", "convert")
	resumed.merge(old)
	var got []string
	for _, s := range resumed.Segments {
		got = append(got, s.Label)
	}
	if want := "boot root.d install.d/10-a install.d/20-b finalise.d convert"; strings.Join(got, " ") != want {
		t.Errorf("merged %v, want %s", got, want)
	}
	if resumed.Segments[1].Seconds != 2 || resumed.Segments[3].Seconds != 2 {
		t.Errorf("merged %+v: a segment it ran takes its own time, one it skipped the old", resumed.Segments)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4200 * time.Millisecond:         "4.2s",
		187 * time.Second:               "3m07s",
		62*time.Minute + 20*time.Second: "1h02m",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %s, want %s", d, got, want)
		}
	}
}

// A line that never ends is shown in pieces, not held without bound.
func TestStampedBoundsALine(t *testing.T) {
	var out bytes.Buffer
	r := NewPlain(&out)
	r.Log().Write(bytes.Repeat([]byte("x"), 3*maxLine))
	if n := strings.Count(out.String(), " | "); n != 3 {
		t.Errorf("%d stamped pieces of a %d-byte line, want 3", n, 3*maxLine)
	}
}

// A build that fails before it starts ends without a time.
func TestFailedBeforeTheStart(t *testing.T) {
	var events bytes.Buffer
	s := NewJSON(&events, &bytes.Buffer{}).Finish(errors.New("element x not found"))
	if s.Total != 0 || !strings.Contains(events.String(), `"event":"build-end","status":"failed","error":"element x not found"}`) {
		t.Errorf("summary %+v, events %s", s, events.String())
	}
}

// hostile are names as a hostile guest or element tree could make them,
// were they not checked before they became events.
var hostile = []string{"\x1b]0;title\x07", "\x1b[2J\x1b[1A", "\u009b31m", "\x9b31m", "evil\u202eexe"}

// notRaw fails when out carries a byte or rune of hostile raw.
func notRaw(t *testing.T, what, out string) {
	t.Helper()
	for _, raw := range []string{"\x1b", "\x07", "\u009b", "\x9b", "\u202e"} {
		if strings.Contains(out, raw) {
			t.Errorf("%s has %q raw:\n%q", what, raw, out)
		}
	}
}

// The plain and terminal views and the summary show names as text,
// whatever they hold; only the JSON events carry them as they are,
// escaped as JSON.
func TestViewsShowNamesAsText(t *testing.T) {
	name := strings.Join(hostile, "|")
	events := []Event{
		{Kind: BuildStart, Elements: []string{name}},
		{Kind: Resumed, Step: name, Hook: name},
		{Kind: StepStart, Step: name},
		{Kind: HookStart, Step: name, Hook: name, Element: name},
		{Kind: HookEnd, Step: name, Hook: name, Element: name, Status: OK},
		{Kind: StepEnd, Step: name},
		{Kind: Output, Path: name, Size: 1, SHA256: name},
	}
	var plainOut bytes.Buffer
	r := NewPlain(&plainOut)
	for _, e := range events {
		r.Event(e)
	}
	s := r.Finish(nil)
	notRaw(t, "the plain view", plainOut.String())
	if !strings.Contains(plainOut.String(), `dibvm: ^[]0;title^G|^[[2J^[[1A|\u009b31m|`+"\uFFFD"+`31m|evil\u202eexe took`) {
		t.Errorf("the plain view does not show the step escaped:\n%s", plainOut.String())
	}
	var sum bytes.Buffer
	s.Print(&sum, "dibvm boot "+name)
	notRaw(t, "the summary", sum.String())

	// The terminal's status line, as mpb asks for it.
	term := &terminal{status: func() Status { return Status{Step: name, Hook: name, Element: name, Since: time.Now()} }}
	var line bytes.Buffer
	if err := term.statusLine(&line, decor.Statistics{AvailableWidth: 1000}); err != nil {
		t.Fatal(err)
	}
	notRaw(t, "the status line", line.String())
	if !strings.Contains(line.String(), `evil\u202eexe`) {
		t.Errorf("the status line does not show the names escaped: %q", line.String())
	}

	// JSON escapes them.
	var js bytes.Buffer
	r = NewJSON(&js, &bytes.Buffer{})
	for _, e := range events {
		r.Event(e)
	}
	r.Finish(nil)
	if strings.ContainsAny(js.String(), "\x1b\x07") {
		t.Errorf("the JSON events carry control characters raw:\n%q", js.String())
	}
}
