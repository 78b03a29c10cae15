// Command dibvm builds diskimage-builder images without root by doing the
// privileged work inside a helper VM.
package main

import (
	"os"

	"github.com/dibvm/dibvm/host/cli"
)

func main() { os.Exit(cli.Main(os.Args)) }
