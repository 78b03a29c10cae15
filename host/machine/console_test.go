package machine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/vm"
)

// However much the guest wrote to its console, the host reads only the
// end, and shows it as text.
func TestConsoleLinesReadOnlyTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 100) + "\r\n"
	for i := 0; i < 20000; i++ { // 2 MiB
		f.WriteString(line)
	}
	f.WriteString("[   12.345] Kernel panic - not syncing: sysrq triggered crash\r\n")
	f.WriteString("\x1b]0;owned\x07\x1b[2Jlast\r\n")
	f.Close()

	lines := vm.ConsoleLines(path, 20)
	if len(lines) != 20 {
		t.Fatalf("%d lines", len(lines))
	}
	if got := lines[19]; got != "^[]0;owned^G^[[2Jlast" {
		t.Errorf("last line %q", got)
	}
	if got := panicLine(path); got != "Kernel panic - not syncing: sysrq triggered crash" {
		t.Errorf("panic line %q", got)
	}
	if n := len(vm.ReadConsole(path)); n > vm.ConsoleRead {
		t.Errorf("read %d bytes of the console", n)
	}
	if !strings.HasPrefix(vm.ReadConsole(path), "xxx") {
		t.Error("the tail does not start at a line")
	}
}
