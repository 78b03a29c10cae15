package sysinit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/reaper"
)

// ConfigureNetwork brings up loopback and, when n is set, the first
// Ethernet interface with n's static address, route and resolver. It runs
// iproute2's ip, which the appliance ships.
func ConfigureNetwork(n *api.Network) error {
	cmds := [][]string{{"link", "set", "lo", "up"}}
	if n != nil {
		dev, err := firstEthernet()
		if err != nil {
			return err
		}
		cmds = append(cmds,
			[]string{"addr", "add", n.Address, "dev", dev},
			[]string{"link", "set", dev, "up"},
			[]string{"route", "add", "default", "via", n.Gateway},
		)
		if err := os.WriteFile("/etc/resolv.conf", []byte("nameserver "+n.DNS+"\n"), 0o644); err != nil {
			return err
		}
	}
	for _, args := range cmds {
		if out, err := reaper.CombinedOutput(exec.Command("ip", args...)); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func firstEthernet() (string, error) {
	links, _ := filepath.Glob("/sys/class/net/*")
	for _, l := range links {
		name := filepath.Base(l)
		if name != "lo" {
			return name, nil
		}
	}
	return "", fmt.Errorf("network asked for, but the guest has no network interface")
}
