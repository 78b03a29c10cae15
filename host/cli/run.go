package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/shellquote"
)

// stopGrace is how long a command may take to end after dibvm forwarded
// it a terminating signal, before the VM is stopped under it.
const stopGrace = 10 * time.Second

func runCommand() *cobra.Command {
	var (
		vf    vmFlags
		stats bool
		env   map[string]string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Boot the helper VM and run a command in it as root",
		Long: `Boot the helper VM, run CMD as root inside it with its stdout and stderr
streamed separately, and exit with CMD's exit status. Signals sent to dibvm
(SIGINT, SIGTERM, SIGHUP) are forwarded to CMD's process group.`,
		Args: func(c *cobra.Command, args []string) error {
			if err := atLeastOne("a COMMAND after --")(c, args); err != nil {
				return err
			}
			// An empty program is found by no one: say so before the VM boots.
			if strings.TrimSpace(args[0]) == "" {
				return usagef("the COMMAND after -- is %q: give a program to run, e.g. dibvm run -- uname -a", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(&vf, args, env, stats)
		},
	}
	cmd.Flags().SetInterspersed(false)
	vf.register(cmd.Flags())
	vf.registerArch(cmd.Flags())
	cmd.Flags().StringToStringVarP(&env, "env", "e", nil, "set an environment variable for CMD (KEY=VALUE, repeatable)")
	cmd.Flags().BoolVar(&stats, "stats", false, "print boot time, command time and peak memory to stderr at the end")
	return cmd
}

func run(vf *vmFlags, args []string, env map[string]string, stats bool) error {
	start := time.Now()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A signal during boot stops the boot.
	booting := make(chan struct{})
	var bootSig os.Signal
	go func() {
		select {
		case bootSig = <-sigs:
			cancel()
		case <-booting:
		}
	}()
	m, err := vf.start(ctx)
	close(booting)
	if err != nil {
		if bootSig != nil {
			return exitCode(128 + int(bootSig.(syscall.Signal)))
		}
		return err
	}
	defer m.Close()
	var cmdTime time.Duration
	if stats {
		defer func() {
			m.Close()
			fmt.Fprintf(os.Stderr, "dibvm: stats: arch=%s accel=%s boot=%.3fs command=%.3fs total=%.3fs dibvm_maxrss=%dMiB qemu_maxrss=%dMiB\n",
				m.Arch, m.Accel, m.BootTime.Seconds(), cmdTime.Seconds(), time.Since(start).Seconds(),
				qemu.SelfMaxRSS()>>20, m.QEMUMaxRSS()>>20)
		}()
	}
	cmdStart := time.Now()

	fwd := make(chan os.Signal, 4)
	var lastSig os.Signal
	done := make(chan error, 1)
	go func() {
		// CMD's output passes as it is, binary data too, as ssh passes
		// it: the helper VM runs nothing here but dibvm's own appliance
		// and the user's own CMD, no element's code.
		done <- m.Client.Run(agentclient.Command{
			Line: shellquote.Join(args...), Env: env, Stdin: os.Stdin,
			Stdout: os.Stdout, Stderr: os.Stderr, Signals: fwd,
		})
	}()
	var grace <-chan time.Time
	for {
		select {
		case err := <-done:
			cmdTime = time.Since(cmdStart)
			return m.Explain(err)
		case sig := <-sigs:
			lastSig = sig
			fwd <- sig
			if grace == nil {
				grace = time.After(stopGrace)
			}
		case <-grace:
			m.Close()
			return exitCode(128 + int(lastSig.(syscall.Signal)))
		case <-m.Done():
			select {
			case err := <-done:
				return m.Explain(err)
			case <-time.After(time.Second):
			}
			return m.StoppedError()
		}
	}
}
