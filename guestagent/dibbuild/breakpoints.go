package dibbuild

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/term"

	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
)

// breakShell is how to start the shell of a breakpoint.
type breakShell struct {
	Root   string   `json:"root"`
	Chroot bool     `json:"chroot"`
	Env    []string `json:"env"`
}

// stop pauses the build at point if break= names it: it leaves the shell's
// settings for dib-break-shell, tells the host, and waits for the host's
// go-ahead on stdin. DIB prints the same two lines around its shell.
func (b *build) stop(point string, chroot bool) error {
	if !b.breaks[point] {
		return nil
	}
	fmt.Fprintf(b.out, "Starting debug shell. Exit to resume building.\nAt stage %s\n", point)
	shell := breakShell{Root: b.target, Chroot: chroot, Env: b.env}
	data, err := json.Marshal(shell)
	if err != nil {
		return err
	}
	if err := os.WriteFile(api.BreakFile, data, 0o600); err != nil {
		return err
	}
	b.tell(api.Message{Break: &api.Break{Point: point, Chroot: chroot}})
	if _, err := b.stdin.ReadString('\n'); err != nil {
		return fmt.Errorf("waiting at breakpoint %s: the host went away: %w", point, err)
	}
	fmt.Fprintln(b.out, "Resuming")
	return nil
}

func (b *build) parseBreaks() error {
	set, err := breakpoint.Parse(b.spec.Break)
	if err != nil {
		return err
	}
	b.breaks = set
	b.stdin = bufio.NewReader(os.Stdin)
	return nil
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
	var s breakShell
	if err := json.Unmarshal(data, &s); err != nil {
		fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
		return 1
	}
	if t := os.Getenv("TERM"); t != "" {
		s.Env = append(s.Env, "TERM="+t) // the user's terminal, not the build's
	}
	args := []string{"bash"}
	if term.IsTerminal(0) {
		args = append(args, "-i")
	}
	if s.Chroot {
		args = append([]string{"chroot", s.Root}, args...)
	} else if err := os.Chdir(s.Root); err != nil {
		fmt.Fprintf(os.Stderr, api.BreakShellCommand+": %v\n", err)
		return 1
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

// stopOnError gives the after-error shell, once per build.
func (b *build) stopOnError(chroot bool) {
	if b.errShell || !b.breaks.OnError() {
		return
	}
	b.errShell = true
	if err := b.stop(breakpoint.AfterError, chroot); err != nil {
		fmt.Fprintf(os.Stderr, api.BuildCommand+": %v\n", err)
	}
}
