package machine

import (
	"fmt"
	"os"
	"time"
)

// The guest's serial console is a file that QEMU writes in the run
// directory. Root in the guest can write to it without end (a hook that
// prints to /dev/console), so the host reads only its end, shows it as
// text (vm.ConsoleLines), and stops a VM whose console outgrows
// maxConsole before it fills the host's disk.
const maxConsole = 32 << 20

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

func floodReason() string {
	return fmt.Sprintf("it wrote more than %d MiB to its serial console and was stopped (does a hook write to /dev/console?)", maxConsole>>20)
}
