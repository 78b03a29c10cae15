package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Client is a connected control channel.
type Client struct {
	ssh *ssh.Client
}

// Dial connects to the agent behind the unix socket at path and completes
// the SSH handshake before ctx ends. ssh.NewClientConn ignores
// ClientConfig.Timeout, so the deadline is set on the connection itself.
func Dial(ctx context.Context, path string, keys *Keys) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.Client)},
		HostKeyCallback: ssh.FixedHostKey(keys.Guest.PublicKey()),
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, "dibvm-guest", cfg)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ssh handshake with the agent: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{ssh: ssh.NewClient(c, chans, reqs)}, nil
}

// Command is one command to run in the guest.
type Command struct {
	// Line is given to /bin/sh -c in the guest. Quote arguments with
	// package shellquote.
	Line  string
	Env   map[string]string
	Stdin io.Reader // nil for none
	// Stdout and Stderr get the command's output as the guest sends
	// it: a caller that shows it to people passes writers of package
	// termsafe, or says why it need not.
	Stdout io.Writer
	Stderr io.Writer
	// Signals are forwarded to the command's process group.
	Signals <-chan os.Signal
	// Terminal, when set, runs the command on a terminal in the guest,
	// sized as this one (stdin must be it, in raw mode).
	Terminal *Terminal
}

// Terminal describes the local terminal for a pty session.
type Terminal struct {
	Term       string
	Cols, Rows int
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Status int
	Signal string // set when a signal ended the command
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by SIG" + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Status)
}

// Run runs cmd and returns nil for exit status 0, an *ExitError for any
// other end of the command, and another error if the channel broke.
func (c *Client) Run(cmd Command) error {
	s, err := c.ssh.NewSession()
	if err != nil {
		return fmt.Errorf("open a session with the agent: %w", err)
	}
	defer s.Close()
	keys := make([]string, 0, len(cmd.Env))
	for k := range cmd.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := s.Setenv(k, cmd.Env[k]); err != nil {
			return fmt.Errorf("set %s in the guest: %w", k, err)
		}
	}
	if t := cmd.Terminal; t != nil {
		if err := s.RequestPty(t.Term, t.Rows, t.Cols, ssh.TerminalModes{}); err != nil {
			return fmt.Errorf("ask the agent for a terminal: %w", err)
		}
	}
	s.Stdin, s.Stdout, s.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
	if err := s.Start(cmd.Line); err != nil {
		return fmt.Errorf("start %q in the guest: %w", cmd.Line, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	for {
		select {
		case err := <-done:
			return exitError(err)
		case sig := <-cmd.Signals:
			if name := sshSignal(sig); name != "" {
				s.Signal(name)
			}
		}
	}
}

func exitError(err error) error {
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitStatus(), Signal: ee.Signal()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return fmt.Errorf("the guest ended the command without an exit status (did the VM stop?)")
	}
	return err
}

func sshSignal(sig os.Signal) ssh.Signal {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return ""
	}
	switch s {
	case syscall.SIGINT:
		return ssh.SIGINT
	case syscall.SIGTERM:
		return ssh.SIGTERM
	case syscall.SIGHUP:
		return ssh.SIGHUP
	case syscall.SIGQUIT:
		return ssh.SIGQUIT
	case syscall.SIGUSR1:
		return ssh.SIGUSR1
	case syscall.SIGUSR2:
		return ssh.SIGUSR2
	}
	return ""
}

// Poweroff asks the agent to power the guest off.
func (c *Client) Poweroff(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ssh.SendRequest(api.PoweroffRequest, true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.ssh.Close() }

// Listen asks the agent to listen on addr (host:port) in the guest and
// to carry each connection there to the host over this connection (SSH's
// remote forwarding, as ssh -R does); the agent takes only the addresses
// its boot configuration names.
func (c *Client) Listen(addr string) (net.Listener, error) {
	ln, err := c.ssh.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("forward %s in the guest to the host: %w", addr, err)
	}
	return ln, nil
}
