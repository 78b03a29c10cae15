package vm

import (
	"io"
	"os"
	"strings"

	"github.com/dibvm/dibvm/host/termsafe"
)

// A guest's serial console is a file its backend writes. Root in the
// guest can write to it without end, so the host reads only its end, and
// shows it as text: what the guest prints cannot drive the terminal.

// ConsoleRead is how much of a console's end is read.
const ConsoleRead = 64 << 10

// ReadConsole returns the last ConsoleRead bytes of the console file at
// path, from the start of a line.
func ReadConsole(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var start int64
	if fi, err := f.Stat(); err == nil && fi.Size() > ConsoleRead {
		start = fi.Size() - ConsoleRead
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, ConsoleRead))
	s := string(b)
	if start > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return s
}

// ConsoleLines are the last n lines of the console, as text that cannot
// drive a terminal.
func ConsoleLines(path string, n int) []string {
	lines := strings.Split(strings.TrimRight(ReadConsole(path), "\r\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = termsafe.String(strings.TrimRight(l, "\r"))
	}
	return lines
}

// ConsoleTail is the console's last 20 lines, each after indent, for an
// error.
func ConsoleTail(path, indent string) string {
	return indent + strings.Join(ConsoleLines(path, 20), "\n"+indent)
}
