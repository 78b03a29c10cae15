// Command dibvm builds diskimage-builder images without root by doing the
// privileged work inside a helper VM.
package main

import (
	"os"

	"github.com/dibvm/dibvm/host/cli"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/qemu"
)

func main() {
	if len(os.Args) == 3 {
		switch os.Args[1] {
		case qemu.WatchdogArg:
			os.Exit(qemu.RunWatchdog(os.Args[2]))
		case egress.RelayArg:
			os.Exit(egress.Relay(os.Args[2]))
		}
	}
	os.Exit(cli.Main(os.Args))
}
