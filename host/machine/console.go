package machine

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dibvm/dibvm/host/termsafe"
)

// The guest's serial console is a file that QEMU writes in the run
// directory. Root in the guest can write to it without end (a hook that
// prints to /dev/console), so the host reads only its end, shows it as
// text, and stops a VM whose console outgrows maxConsole before it fills
// the host's disk.
const (
	maxConsole  = 32 << 20
	consoleTail = 64 << 10
)

// watchConsole stops the VM if its console grows beyond maxConsole. It
// returns when QEMU exits.
func (m *Machine) watchConsole(path string) {
	for {
		select {
		case <-m.proc.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if fi, err := os.Stat(path); err == nil && fi.Size() > maxConsole {
			m.consoleFlood.Store(true)
			m.proc.Kill()
			return
		}
	}
}

// readConsole returns the last consoleTail bytes of the console, from
// the start of a line.
func readConsole(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var start int64
	if fi, err := f.Stat(); err == nil && fi.Size() > consoleTail {
		start = fi.Size() - consoleTail
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, consoleTail))
	s := string(b)
	if start > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return s
}

func floodReason() string {
	return fmt.Sprintf("it wrote more than %d MiB to its serial console and was stopped (does a hook write to /dev/console?)", maxConsole>>20)
}

// consoleLines are the last n lines of the console, as text that cannot
// drive a terminal.
func consoleLines(path string, n int) []string {
	lines := strings.Split(strings.TrimRight(readConsole(path), "\r\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = termsafe.String(strings.TrimRight(l, "\r"))
	}
	return lines
}
