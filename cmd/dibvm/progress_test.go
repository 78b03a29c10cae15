package main_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/dibvm/dibvm/host/shellquote"
)

// A build's events, as --progress=json writes them, follow the schema
// and tell its steps, hooks and output; the next build of the same
// elements, on a terminal, shows the hook running in a status block with
// an estimate from the first, the hooks' output scrolling above it, and
// at the end the summary in its place.
func TestProgress(t *testing.T) {
	needVM(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("the terminal test needs tmux (scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIBVM_TIMINGS_DIR=" + filepath.Join(dir, "timings")}
	out := filepath.Join(dir, "json")
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "--progress=json", "tiny-os", "checkpoint-steps")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 40))
	}
	schema, err := jsonschema.NewCompiler().Compile("../../docs/events.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		Event, Step, Hook, Element, Status, Path, SHA256 string
		Seconds                                          float64
	}
	var events []event
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(sc.Text()))
		if err != nil {
			t.Fatalf("stdout has a line that is not JSON: %q", sc.Text())
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("%s: %v", sc.Text(), err)
		}
		var e event
		json.Unmarshal(sc.Bytes(), &e)
		events = append(events, e)
	}
	find := func(kind, step, hook string) *event {
		for i, e := range events {
			if e.Event == kind && e.Step == step && e.Hook == hook {
				return &events[i]
			}
		}
		t.Errorf("no %s event of %s %s among %d", kind, step, hook, len(events))
		return &event{}
	}
	find("step-end", "boot", "")
	find("hook-start", "install.d", "40-slow")
	if e := find("hook-end", "install.d", "40-slow"); e.Seconds < 10 || e.Element != "checkpoint-steps" || e.Status != "ok" {
		t.Errorf("the slow hook ended as %+v; it sleeps 10 s", e)
	}
	if e := find("step-end", "install.d", ""); e.Seconds < 10 {
		t.Errorf("install.d took %.1f s, less than its slow hook", e.Seconds)
	}
	data, _ := os.ReadFile(out + ".tar")
	sum := sha256.Sum256(data)
	if e := find("output", "", ""); e.Path != out+".tar" || e.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("output event %+v, want %s with its SHA-256", e, out+".tar")
	}
	if last := events[len(events)-1]; last.Event != "build-end" || last.Status != "ok" {
		t.Errorf("the last event is %+v", last)
	}
	if !stamp.MatchString(r.stderr) || !strings.Contains(r.stderr, "Built in ") {
		t.Errorf("with --progress=json, the build's lines (stamped) and summary go to stderr:\n%s", tail(r.stderr, 20))
	}

	// The same build on a terminal.
	out = filepath.Join(dir, "tty")
	pane := "dibvm-progress-" + filepath.Base(dir)
	line := shellquote.Join(append([]string{"env"}, append(env, "DIB_NO_CHECKPOINTS=1", dibvmBin,
		"create", "-n", "-t", "tar", "-o", out, "tiny-os", "checkpoint-steps")...)...)
	tmux := func(args ...string) string {
		b, err := exec.Command("tmux", append([]string{"-L", pane}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	tmux("new-session", "-d", "-x", "120", "-y", "40", "sh", "-c", line+"; echo exit=$?; sleep 600")
	defer exec.Command("tmux", "-L", pane, "kill-server").Run()
	var during string
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		screen := tmux("capture-pane", "-p")
		if strings.Contains(screen, "40-slow (checkpoint-steps)  for ") {
			during = screen
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if during == "" {
		t.Fatalf("the status block never showed the slow hook:\n%s", tmux("capture-pane", "-p"))
	}
	rows := strings.Split(strings.TrimRight(during, "\n"), "\n")
	status, bar := rows[len(rows)-2], rows[len(rows)-1]
	if !strings.HasPrefix(status, "install.d  40-slow (checkpoint-steps)  for ") ||
		!strings.Contains(bar, "[") || !strings.Contains(bar, "%  about ") || !strings.HasSuffix(bar, " left") {
		t.Errorf("the status block is not the step, hook and bar with an estimate, at the bottom:\n%s", during)
	}
	if !strings.Contains(during, "dib-run-parts Running /tmp/in_target.d/install.d/40-slow") {
		t.Errorf("the hooks' output does not scroll above the block:\n%s", during)
	}
	var after string
	for time.Now().Before(deadline) {
		if after = tmux("capture-pane", "-p", "-S", "-60"); strings.Contains(after, "exit=") {
			break
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(after, "exit=0") {
		t.Fatalf("the build on a terminal failed:\n%s", after)
	}
	for _, want := range []string{"Built in ", "Steps:", "Slowest hooks:", "install.d/40-slow (checkpoint-steps)", "Outputs:", out + ".tar"} {
		if !strings.Contains(after, want) {
			t.Errorf("the summary lacks %q:\n%s", want, after)
		}
	}
	if strings.Contains(after, " left") || stamp.MatchString(after) {
		t.Errorf("the status block stayed on the terminal, or the lines are stamped as in a log:\n%s", after)
	}
}
