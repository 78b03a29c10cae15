// Command dibvm-agent is the guest agent: PID 1 of dibvm's helper VM.
// It is built for Linux only and embedded in the dibvm host binary.
package main

import (
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dibvm/dibvm/elements/pkgmap"
	"github.com/dibvm/dibvm/guestagent"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/breakshell"
	"github.com/dibvm/dibvm/guestagent/customize"
	"github.com/dibvm/dibvm/guestagent/dibbuild"
	"github.com/dibvm/dibvm/guestagent/hookrunner"
	"github.com/dibvm/dibvm/guestagent/modprobe"
	"github.com/dibvm/dibvm/guestagent/pkgtools"
	"github.com/dibvm/dibvm/guestagent/sysinit"
)

func main() {
	// The same binary serves the build: as dib-build under the agent, and
	// as the tools DIB's hooks call, outside and inside the target's chroot.
	switch filepath.Base(os.Args[0]) {
	case api.RunPartsTool:
		os.Exit(hookrunner.Main(os.Args[1:]))
	case api.PkgMapTool:
		os.Exit(pkgmap.Main(os.Args[1:], os.Getenv, pkgmap.DefaultDir, os.Stdout, os.Stderr))
	case api.PackageInstallsTool:
		os.Exit(pkgtools.InstallMain(os.Args[1:], os.Stdout, os.Stderr))
	case "modprobe":
		os.Exit(modprobe.Main(os.Args[1:], os.Stderr))
	case api.PackageInstallsSquashTool:
		os.Exit(pkgtools.SquashMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	switch {
	case len(os.Args) > 1 && os.Args[1] == api.BuildCommand:
		os.Exit(dibbuild.Main(os.Args[2:]))
	case len(os.Args) > 1 && os.Args[1] == api.BreakShellCommand:
		os.Exit(breakshell.ShellMain())
	case len(os.Args) > 1 && os.Args[1] == api.CustomizeCommand:
		os.Exit(customize.Main(os.Args[2:]))
	}
	if os.Getpid() != 1 {
		log.Fatal("dibvm-agent runs as PID 1 of dibvm's helper VM; it is not a command to run by hand")
	}
	err := guestagent.Run()
	log.Print(api.Fatal, err)
	// Give the console a moment, then stop the machine: the host sees the
	// VM exit and shows the console's last lines, this one among them.
	time.Sleep(100 * time.Millisecond)
	sysinit.Poweroff()
}
