// Package agentbin holds the guest agent binaries that `make` builds and
// the host binary embeds, one per guest architecture, each with its SHA256
// (computed by make, so that finding the cached appliance does not hash
// megabytes on every start).
package agentbin

import (
	"embed"
	"fmt"
	"strings"

	"github.com/dibvm/dibvm/vmimage"
)

//go:embed bin
var bins embed.FS

// Load returns the agent built for goarch.
func Load(goarch string) (vmimage.Agent, error) {
	name := "bin/dibvm-agent-linux-" + goarch
	b, err := bins.ReadFile(name)
	if err != nil {
		return vmimage.Agent{}, fmt.Errorf("this dibvm was built without its guest agent for linux/%s: build it with `make`", goarch)
	}
	sum, err := bins.ReadFile(name + ".sha256")
	if fields := strings.Fields(string(sum)); err == nil && len(fields) > 0 && len(fields[0]) == 64 {
		return vmimage.Agent{Binary: b, Digest: fields[0]}, nil
	}
	return vmimage.NewAgent(b), nil
}
