package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dibvm/dibvm/host/agentclient"
)

// stopGrace is how long a command may take to end after dibvm forwarded
// it a terminating signal, before the VM is stopped under it.
const stopGrace = 10 * time.Second

func runCommand() *cobra.Command {
	var vf vmFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Boot the helper VM and run a command in it as root",
		Long: `Boot the helper VM, run CMD as root inside it with its stdout and stderr
streamed separately, and exit with CMD's exit status. Signals sent to dibvm
(SIGINT, SIGTERM, SIGHUP) are forwarded to CMD's process group.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(&vf, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	vf.register(cmd.Flags())
	return cmd
}

func run(vf *vmFlags, args []string) error {
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

	fwd := make(chan os.Signal, 4)
	var lastSig os.Signal
	done := make(chan error, 1)
	go func() {
		done <- m.Client.Run(agentclient.Command{
			Line: agentclient.ShellQuote(args), Stdin: os.Stdin,
			Stdout: os.Stdout, Stderr: os.Stderr, Signals: fwd,
		})
	}()
	var grace <-chan time.Time
	for {
		select {
		case err := <-done:
			return err
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
				var ee *agentclient.ExitError
				if errors.As(err, &ee) {
					return err
				}
			default:
			}
			return m.StoppedError()
		}
	}
}
