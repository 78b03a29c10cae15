// Package agentbin holds the guest agent binaries that `make` builds and
// the host binary embeds, one per guest architecture.
package agentbin

import (
	"embed"
	"fmt"
)

//go:embed bin
var bins embed.FS

// Load returns the agent built for goarch.
func Load(goarch string) ([]byte, error) {
	b, err := bins.ReadFile("bin/dibvm-agent-linux-" + goarch)
	if err != nil {
		return nil, fmt.Errorf("this dibvm was built without its guest agent for linux/%s: build it with `make`", goarch)
	}
	return b, nil
}
