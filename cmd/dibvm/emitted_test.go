package main_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Files that hooks write beside the image, as DIB's baremetal and
// ramdisk-base elements write ${IMAGE_NAME}.kernel from cleanup.d, come
// back beside the image, named as DIB names them, and are listed in the
// summary and in the JSON events with the phase that wrote them. A file
// of the same name already there is moved aside, as an image is.
func TestCreateBringsBackEmittedFiles(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	old := filepath.Join(h.out, "img.initrd")
	if err := os.WriteFile(old, []byte("from an earlier build"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h.cred != nil {
		os.Chown(old, int(h.cred.Uid), int(h.cred.Gid))
	}
	// The second build resumes from the checkpoint the first kept (or
	// both do, from an earlier run's): the files of the phases before it
	// are on the kept disk, and still say which phase wrote them.
	for _, build := range []string{"first", "resumed"} {
		r := h.create(t, nil, 5*time.Minute, []string{"--progress=json"}, "emitter")
		t.Logf("%s build took %s", build, r.took.Round(time.Second))
		if r.code != 0 {
			t.Fatalf("%s build: exit %d\nstderr:\n%s", build, r.code, tail(r.stderr, 40))
		}
		if build == "resumed" && !strings.Contains(r.stderr, "dibvm: resuming after ") {
			t.Errorf("the second build did not resume from a checkpoint:\n%s", tail(r.stderr, 40))
		}
		checkEmitted(t, h, r)
		if build == "first" {
			aside, _ := filepath.Glob(old + "-*")
			if b, err := os.ReadFile(firstOf(aside)); len(aside) != 1 || string(b) != "from an earlier build" {
				t.Errorf("the earlier img.initrd was not moved aside: %v %q %v", aside, b, err)
			}
		}
	}
}

// checkEmitted checks that the emitter element's files arrived, each
// listed in the events and the summary with the phase that wrote it.
func checkEmitted(t *testing.T, h *hostileRun, r result) {
	t.Helper()
	if !strings.Contains(r.stderr, "IMAGE_NAME is /build/out/img\n") {
		t.Errorf("hooks' IMAGE_NAME is not the image's name in the helper's output directory:\n%s", tail(r.stderr, 40))
	}
	emitted := emittedEvents(t, r.stdout)
	want := map[string]string{"img.kernel": "cleanup.d", "img.initrd": "cleanup.d", "img-early.txt": "root.d"}
	for name, phase := range want {
		path := filepath.Join(h.out, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s did not arrive: %v", name, err)
			continue
		}
		sum := sha256.Sum256(data)
		e, ok := emitted[path]
		if !ok || e.EmittedBy != phase || e.Size != int64(len(data)) || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: event %+v, want emitted_by %s, size %d and its SHA-256", name, e, phase, len(data))
		}
		if !strings.Contains(r.stderr, "  "+path+" ") || !strings.Contains(r.stderr, "from "+phase) {
			t.Errorf("the summary does not list %s from %s:\n%s", path, phase, tail(r.stderr, 12))
		}
	}
	if len(emitted) != len(want) {
		t.Errorf("emitted files in the events: %v", emitted)
	}
	if b, _ := os.ReadFile(filepath.Join(h.out, "img-early.txt")); string(b) != "early from root.d\n" {
		t.Errorf("img-early.txt: %q", b)
	}
	if fi, err := os.Stat(filepath.Join(h.out, "img.kernel")); err != nil || fi.Size() != 3000000 {
		t.Errorf("img.kernel: %v, %v", fi, err)
	}
}

// emittedEvents are the output events of files hooks wrote, by path,
// each checked against the schema.
func emittedEvents(t *testing.T, stdout string) map[string]emittedEvent {
	t.Helper()
	schema, err := jsonschema.NewCompiler().Compile("../../docs/events.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]emittedEvent{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(sc.Text()))
		if err != nil {
			t.Fatalf("stdout has a line that is not JSON: %q", sc.Text())
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("%s: %v", sc.Text(), err)
		}
		var e emittedEvent
		json.Unmarshal(sc.Bytes(), &e)
		if e.Event == "output" && e.EmittedBy != "" {
			out[e.Path] = e
		}
	}
	return out
}

type emittedEvent struct {
	Event, Path, SHA256 string
	EmittedBy           string `json:"emitted_by"`
	Size                int64
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// What a hook leaves beside the image that cannot come back fails the
// build, naming the file and the phase, and nothing reaches the host:
// not the image, not the good file beside it.
func TestCreateRefusesHostileEmittedFiles(t *testing.T) {
	needVM(t)
	h := newHostileRun(t)
	for _, tc := range []struct{ mode, want string }{
		{"link", "cleanup.d: a hook left /build/out/img.kernel beside the image, which cannot come back to the host: it is a symbolic link"},
		{"big", "/build/out/img.initrd beside the image, which cannot come back to the host: it is 5120 MiB, more than the 4 GiB"},
		{"name", `/build/out/evil.txt beside the image, which cannot come back to the host: "evil.txt" is not named img.SUFFIX`},
	} {
		r := h.create(t, []string{"HOSTILE_EMIT=" + tc.mode}, 5*time.Minute, nil, "hostile-emit")
		t.Logf("%s: build took %s", tc.mode, r.took.Round(time.Second))
		failed(t, r, tc.want)
		h.nothingLeft(t)
	}
}
