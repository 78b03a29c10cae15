package session

import (
	"os/exec"
	"strings"
	"testing"
)

// The packages of a build's path depend only downwards: the command line
// joins a plan to a session; the plan knows nothing of VMs or sessions;
// the session runs a job in the VM and knows nothing of plans or the
// command line; the checkpoints, the outputs and the hooks' environment
// know nothing of any of them.
func TestBuildPathLayers(t *testing.T) {
	const module = "github.com/dibvm/dibvm/"
	for pkg, never := range map[string][]string{
		"host/plan":       {"host/session", "host/machine"},
		"host/session":    {"host/plan", "host/cli"},
		"host/checkpoint": {"host/plan", "host/session", "host/cli"},
		"host/outputs":    {"host/plan", "host/session", "host/cli"},
		"host/hookenv":    {"host/plan", "host/session", "host/cli"},
	} {
		cmd := exec.Command("go", "list", "-deps", "./"+pkg)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, n := range never {
			for _, d := range deps {
				if d == module+n {
					t.Errorf("%s depends on %s", pkg, n)
				}
			}
		}
	}
}
