package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The console's end, shown when no login comes to a booted image, is
// the image's text: it reaches the user as text, never as sequences for
// the terminal.
func TestConsoleTailIsText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	junk := strings.Repeat(strings.Repeat("x", 99)+"\n", 2000) // beyond what is read
	last := "\x1b]0;title\x07 \x1b[2J\x1b[H \u009b31m \x9b31m evil\u202eexe login: \r\n"
	if err := os.WriteFile(path, []byte(junk+"Debian GNU/Linux 12 debian ttyS0\r\n"+last), 0o644); err != nil {
		t.Fatal(err)
	}
	tail := ConsoleTail(path, "  ")
	for _, raw := range []string{"\x1b", "\x07", "\u009b", "\x9b", "\u202e", "\r"} {
		if strings.Contains(tail, raw) {
			t.Errorf("the console's tail has %q raw:\n%q", raw, tail)
		}
	}
	want := `  ^[]0;title^G ^[[2J^[[H \u009b31m ` + "\uFFFD" + `31m evil\u202eexe login: `
	if lines := strings.Split(tail, "\n"); len(lines) != 20 || lines[19] != want || lines[18] != "  Debian GNU/Linux 12 debian ttyS0" {
		t.Errorf("the console's tail:\n%q\nwant 20 lines ending %q", tail, want)
	}
}

func TestConsoleLinesOfNothing(t *testing.T) {
	if lines := ConsoleLines(filepath.Join(t.TempDir(), "none"), 20); len(lines) != 1 || lines[0] != "" {
		t.Errorf("lines of a missing console: %q", lines)
	}
}
