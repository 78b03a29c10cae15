package main_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dibvm/dibvm/"

// TestHostSeesOnlyTheAPI holds the split between host and guest: the host
// binary, built for every host it runs on, depends on no guest package but
// guestagent/api, the contract; and the agent depends on no host package.
// A host that imported guest code would pull in Linux-only code and stop
// building for macOS.
func TestHostSeesOnlyTheAPI(t *testing.T) {
	for _, goos := range []string{"darwin", "linux"} {
		for _, goarch := range []string{"amd64", "arm64"} {
			deps := listDeps(t, goos, goarch, "./cmd/dibvm")
			sawAPI := false
			for _, d := range deps {
				switch {
				case d == module+"guestagent/api":
					sawAPI = true
				case strings.HasPrefix(d, module+"guestagent") || strings.HasPrefix(d, module+"cmd/dibvm-agent"):
					t.Errorf("%s/%s: the host binary depends on %s; the host may see only guestagent/api", goos, goarch, d)
				}
			}
			if !sawAPI {
				t.Errorf("%s/%s: the host binary does not depend on guestagent/api: is this list right?\n%s", goos, goarch, strings.Join(deps, "\n"))
			}
		}
	}
	for _, goarch := range []string{"amd64", "arm64"} {
		for _, d := range listDeps(t, "linux", goarch, "./cmd/dibvm-agent") {
			if strings.HasPrefix(d, module+"host/") || d == module+"cmd/dibvm" {
				t.Errorf("linux/%s: the agent depends on %s; the guest may see no host package", goarch, d)
			}
		}
	}
}

// listDeps is `go list -deps` of pkg (relative to the module root) for
// goos/goarch. The go in PATH is the one running this test: go test puts
// its own GOROOT/bin first.
func listDeps(t *testing.T, goos, goarch, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("GOOS=%s GOARCH=%s go list -deps %s: %v\n%s", goos, goarch, pkg, err, stderr)
	}
	return strings.Fields(string(out))
}
