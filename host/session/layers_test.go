package session

import (
	"os/exec"
	"strings"
	"testing"
)

// The packages of a build's path depend only downwards: the session runs
// a plan in the VM; the plan knows nothing of VMs or sessions; the
// checkpoints, the outputs and the hooks' environment know nothing of
// plans or sessions.
func TestBuildPathLayers(t *testing.T) {
	const module = "github.com/dibvm/dibvm/"
	for pkg, never := range map[string][]string{
		"host/plan":       {"host/session", "host/machine"},
		"host/checkpoint": {"host/session", "host/plan", "host/machine"},
		"host/outputs":    {"host/session", "host/plan", "host/machine"},
		"host/hookenv":    {"host/session", "host/plan"},
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
