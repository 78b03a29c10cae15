package cli

import (
	"bytes"
	"strings"
	"testing"
)

// What -- COMMAND prints comes from the image. Its stderr reaches the
// user as text; its stdout does too on a terminal, and unchanged, as
// data, through a pipe.
func TestCommandOutputs(t *testing.T) {
	in := "\x1b]0;title\x07 \x1b[2J\x1b[1A \u009b31m \x9b31m evil\u202eexe\r\n"
	shown := `^[]0;title^G ^[[2J^[[1A \u009b31m ` + "\uFFFD" + `31m evil\u202eexe` + "\n"
	for _, tc := range []struct {
		terminal bool
		stdout   string
	}{
		{true, shown},
		{false, in},
	} {
		var stdout, stderr bytes.Buffer
		out, errOut, flush := commandOutputs(&stdout, &stderr, tc.terminal)
		out.Write([]byte(in))
		errOut.Write([]byte(in))
		flush()
		if stdout.String() != tc.stdout {
			t.Errorf("stdout on a terminal %v: %q, want %q", tc.terminal, stdout.String(), tc.stdout)
		}
		if stderr.String() != shown {
			t.Errorf("stderr (stdout on a terminal %v): %q, want %q", tc.terminal, stderr.String(), shown)
		}
		if strings.ContainsAny(stderr.String(), "\x1b\x07\u009b\u202e") {
			t.Errorf("stderr has control characters raw: %q", stderr.String())
		}
	}
}
