// Package breakshell stops a build at the points break= names and starts
// the shell the host opens there (dib-break-shell).
package breakshell

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/term"

	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/control"
)

// Shell is how to start the shell of a breakpoint: what the build leaves
// at api.BreakFile for dib-break-shell.
type Shell struct {
	Root   string   `json:"root"`
	Chroot bool     `json:"chroot"`
	Env    []string `json:"env"`
}

// Breaks are a build's breakpoints.
type Breaks struct {
	set      breakpoint.Set
	host     *control.Host
	out      io.Writer // what people read
	file     string    // api.BreakFile
	errShell bool      // the after-error shell has been given
}

// New reads break= (the build spec's Break) for a build that speaks to
// host and prints to out.
func New(spec string, host *control.Host, out io.Writer) (*Breaks, error) {
	set, err := breakpoint.Parse(spec)
	if err != nil {
		return nil, err
	}
	return &Breaks{set: set, host: host, out: out, file: api.BreakFile}, nil
}

// Stop pauses the build at point if break= names it: it leaves the
// shell's settings for dib-break-shell, tells the host, and waits for the
// host's go-ahead on stdin. DIB prints the same two lines around its
// shell.
func (b *Breaks) Stop(point string, sh Shell) error {
	if !b.set[point] {
		return nil
	}
	fmt.Fprintf(b.out, "Starting debug shell. Exit to resume building.\nAt stage %s\n", point)
	data, err := json.Marshal(sh)
	if err != nil {
		return err
	}
	if err := os.WriteFile(b.file, data, 0o600); err != nil {
		return err
	}
	b.host.Tell(api.Message{Break: &api.Break{Point: point, Chroot: sh.Chroot}})
	if _, err := b.host.ReadLine(); err != nil {
		return fmt.Errorf("waiting at breakpoint %s: the host went away: %w", point, err)
	}
	fmt.Fprintln(b.out, "Resuming")
	return nil
}

// StopOnError gives the after-error shell, once per build; a failure to
// is only told, as the build has failed already.
func (b *Breaks) StopOnError(sh Shell) {
	if b.errShell || !b.set.OnError() {
		return
	}
	b.errShell = true
	if err := b.Stop(breakpoint.AfterError, sh); err != nil {
		fmt.Fprintf(os.Stderr, api.BuildCommand+": %v\n", err)
	}
}

// ShellMain is `dib-break-shell`: the shell the host opens at a
// breakpoint, in the target's chroot or beside it, with the build's
// environment.
func ShellMain() int {
	data, err := os.ReadFile(api.BreakFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, api.BreakShellCommand+": no breakpoint is active: %v\n", err)
		return 1
	}
	var s Shell
	if err := json.Unmarshal(data, &s); err != nil {
		fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
		return 1
	}
	args, dir := s.command(os.Getenv("TERM"), term.IsTerminal(0))
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
			return 1
		}
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
		return 1
	}
	err = syscall.Exec(path, args, s.Env)
	fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
	return 1
}

// command is the shell's command line, with the user's terminal type
// added to its environment (the user's terminal, not the build's), and
// the directory to start it in: the target, for a shell beside it.
func (s *Shell) command(termType string, interactive bool) (args []string, dir string) {
	if termType != "" {
		s.Env = append(s.Env, "TERM="+termType)
	}
	args = []string{"bash"}
	if interactive {
		args = append(args, "-i")
	}
	if s.Chroot {
		return append([]string{"chroot", s.Root}, args...), ""
	}
	return args, s.Root
}
