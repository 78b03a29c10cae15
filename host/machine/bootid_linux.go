package machine

import (
	"os"
	"strings"
)

// bootID names this boot of the host.
func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
