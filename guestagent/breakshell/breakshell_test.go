package breakshell

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/control"
)

// breaks are b's breakpoints for a build whose host answers with words,
// leaving the shell's settings in a temporary directory.
func breaks(t *testing.T, spec, words string) (*Breaks, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var ctl, out bytes.Buffer
	b, err := New(spec, control.New(&ctl, strings.NewReader(words), io.Discard), &out)
	if err != nil {
		t.Fatal(err)
	}
	b.file = filepath.Join(t.TempDir(), "break.json")
	return b, &ctl, &out
}

func TestStopLeavesTheShellAndWaits(t *testing.T) {
	b, ctl, out := breaks(t, "before-install,after-finalise", "\n")
	if err := b.Stop("after-install", Shell{Root: "/build/mnt"}); err != nil || out.Len() != 0 || ctl.Len() != 0 {
		t.Fatalf("a point break= does not name stopped: %v, %q", err, out)
	}
	sh := Shell{Root: "/build/mnt", Chroot: true, Env: []string{"PATH=/bin", "DIB_X=1"}}
	if err := b.Stop("before-install", sh); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.file)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"root":"/build/mnt","chroot":true,"env":["PATH=/bin","DIB_X=1"]}`; string(data) != want {
		t.Errorf("break file = %s\nwant %s", data, want)
	}
	if want := "Starting debug shell. Exit to resume building.\nAt stage before-install\nResuming\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out, want)
	}
	m, err := api.ReadMessage(ctl)
	if err != nil || m.Break == nil || *m.Break != (api.Break{Point: "before-install", Chroot: true}) {
		t.Errorf("told the host %+v, %v", m, err)
	}
	// The host has no more words: the build cannot go on.
	err = b.Stop("after-finalise", sh)
	if err == nil || !strings.HasPrefix(err.Error(), "waiting at breakpoint after-finalise: the host went away: ") {
		t.Errorf("with the host gone: %v", err)
	}
}

func TestErrorShellOnce(t *testing.T) {
	b, ctl, _ := breaks(t, "after-error", "\n\n")
	b.StopOnError(Shell{Root: "/t"})
	b.StopOnError(Shell{Root: "/t"})
	var points []string
	for {
		m, err := api.ReadMessage(ctl)
		if err != nil {
			break
		}
		points = append(points, m.Break.Point)
	}
	if !slices.Equal(points, []string{"after-error"}) {
		t.Errorf("stopped at %q, want after-error once", points)
	}
	none, ctl, _ := breaks(t, "", "")
	none.StopOnError(Shell{})
	if ctl.Len() != 0 {
		t.Error("an error shell without break=after-error")
	}
	if _, err := New("before-nowhere", nil, io.Discard); err == nil {
		t.Error("break= of an unknown point accepted")
	}
}

func TestShellCommand(t *testing.T) {
	s := Shell{Root: "/build/mnt", Chroot: true, Env: []string{"A=1"}}
	args, dir := s.command("xterm", true)
	if !slices.Equal(args, []string{"chroot", "/build/mnt", "bash", "-i"}) || dir != "" {
		t.Errorf("in the chroot: %q in %q", args, dir)
	}
	if !slices.Equal(s.Env, []string{"A=1", "TERM=xterm"}) {
		t.Errorf("env %q", s.Env)
	}
	s = Shell{Root: "/build/mnt"}
	args, dir = s.command("", false)
	if !slices.Equal(args, []string{"bash"}) || dir != "/build/mnt" || len(s.Env) != 0 {
		t.Errorf("beside the target: %q in %q, env %q", args, dir, s.Env)
	}
}
