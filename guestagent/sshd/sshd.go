// Package sshd is the agent's SSH server: it runs commands for the host
// with separate, live stdout and stderr, forwards signals to the command's
// process group, and reports the exit status. It serves one connection at
// a time over any net.Conn (in the guest, a virtio-serial port).
package sshd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/reaper"
)

// Server runs commands for one authorized client.
type Server struct {
	config *ssh.ServerConfig
	// BaseEnv is the environment every command starts with.
	BaseEnv []string
	// Poweroff is called after the host asked for it and got its reply.
	Poweroff func()
	// Forwardable are the addresses (host:port) the host may ask the
	// agent to listen on and forward to it (see forward.go).
	Forwardable map[string]bool
}

// New returns a server that identifies itself with hostKey and accepts
// only authorized.
func New(hostKey ssh.Signer, authorized ssh.PublicKey) *Server {
	want := authorized.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), want) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostKey)
	return &Server{config: cfg, BaseEnv: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root", "LANG=C.UTF-8"}}
}

// Serve handles one SSH connection on conn until the client goes away.
func (s *Server) Serve(conn net.Conn) error {
	sconn, chans, reqs, err := ssh.NewServerConn(conn, s.config)
	if err != nil {
		return fmt.Errorf("ssh handshake: %w", err)
	}
	defer sconn.Close()
	fwd := &forwards{lns: map[string]net.Listener{}}
	defer fwd.closeAll()
	go s.globalRequests(sconn, fwd, reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
	return sconn.Wait()
}

func (s *Server) globalRequests(conn ssh.Conn, fwd *forwards, reqs <-chan *ssh.Request) {
	for r := range reqs {
		var fr forwardRequest
		switch r.Type {
		case api.PoweroffRequest:
			r.Reply(true, nil)
			if s.Poweroff != nil {
				s.Poweroff()
			}
		case "tcpip-forward":
			ok := ssh.Unmarshal(r.Payload, &fr) == nil && fr.Port != 0 && s.listen(conn, fwd, fr)
			r.Reply(ok, nil)
		case "cancel-tcpip-forward":
			r.Reply(ssh.Unmarshal(r.Payload, &fr) == nil && fwd.cancel(fr), nil)
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// session serves one channel: env and pty requests, then one exec, then
// signals and window changes.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	env := append([]string(nil), s.BaseEnv...)
	var (
		proc *process
		tty  *ptyRequest
	)
	for r := range reqs {
		switch r.Type {
		case "pty-req":
			var p ptyRequest
			if proc != nil || ssh.Unmarshal(r.Payload, &p) != nil {
				r.Reply(false, nil)
				continue
			}
			tty = &p
			env = append(env, "TERM="+p.Term)
			r.Reply(true, nil)
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			if proc != nil && proc.pty != nil && ssh.Unmarshal(r.Payload, &w) == nil {
				pty.Setsize(proc.pty, &pty.Winsize{Cols: uint16(w.Cols), Rows: uint16(w.Rows)})
			}
			if r.WantReply {
				r.Reply(true, nil)
			}
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(r.Payload, &kv) != nil {
				r.Reply(false, nil)
				continue
			}
			env = append(env, kv.Name+"="+kv.Value)
			r.Reply(true, nil)
		case "exec":
			var cmd struct{ Command string }
			if proc != nil || ssh.Unmarshal(r.Payload, &cmd) != nil {
				r.Reply(false, nil)
				continue
			}
			p, err := start(cmd.Command, env, ch, tty)
			if err != nil {
				r.Reply(false, nil)
				fmt.Fprintf(ch.Stderr(), api.LogPrefix+"%v\n", err)
				sendExit(ch, 127, 0)
				ch.Close()
				continue
			}
			r.Reply(true, nil)
			proc = p
			go func() {
				status, sig := p.wait()
				sendExit(ch, status, sig)
				ch.Close()
			}()
		case "signal":
			var sig struct{ Name string }
			if proc == nil || ssh.Unmarshal(r.Payload, &sig) != nil {
				r.Reply(false, nil)
				continue
			}
			proc.signal(signalByName(sig.Name))
			r.Reply(true, nil)
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
	if proc != nil {
		// The client is gone; so is the command's reason to run.
		proc.signal(syscall.SIGKILL)
	}
}

// ptyRequest is RFC 4254's pty-req.
type ptyRequest struct {
	Term                      string
	Cols, Rows, Width, Height uint32
	Modes                     string
}

// process is a command started for a session.
type process struct {
	pid    int
	pty    *os.File // the terminal's master side, for a pty session
	copies sync.WaitGroup
}

// start runs command with sh -c in its own process group, its stdio wired
// to ch, or to a new terminal when the client asked for one. The pipes are
// *os.File so that os/exec starts no goroutines that only its Wait would
// collect: the reaper waits for the process instead.
func start(command string, env []string, ch ssh.Channel, tty *ptyRequest) (*process, error) {
	if tty != nil {
		return startPTY(command, env, ch, tty)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = env
	cmd.Dir = "/root"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{pid: cmd.Process.Pid}
	cmd.Process.Release()
	go func() {
		io.Copy(inW, ch)
		inW.Close()
	}()
	p.copies.Add(2)
	go func() { defer p.copies.Done(); io.Copy(ch, outR); outR.Close() }()
	go func() { defer p.copies.Done(); io.Copy(ch.Stderr(), errR); errR.Close() }()
	return p, nil
}

// startPTY runs command on a new terminal: a session leader with the
// terminal as its controlling tty, so that job control and ^C work.
func startPTY(command string, env []string, ch ssh.Channel, tty *ptyRequest) (*process, error) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = env
	cmd.Dir = "/root"
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(tty.Cols), Rows: uint16(tty.Rows)})
	if err != nil {
		return nil, err
	}
	p := &process{pid: cmd.Process.Pid, pty: ptmx}
	cmd.Process.Release()
	go io.Copy(ptmx, ch)
	p.copies.Add(1)
	go func() {
		defer p.copies.Done()
		io.Copy(ch, ptmx) // ends with EIO once no process holds the terminal
		ptmx.Close()
	}()
	return p, nil
}

// wait returns the exit status, or the signal that ended the process,
// after all of its output has been sent.
func (p *process) wait() (status int, sig syscall.Signal) {
	ws := <-reaper.Wait(p.pid)
	p.copies.Wait()
	if ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal()
	}
	return ws.ExitStatus(), 0
}

func (p *process) signal(sig syscall.Signal) {
	if sig == 0 {
		return
	}
	if err := unix.Kill(-p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		log.Printf("signal %d to process group %d: %v", sig, p.pid, err)
	}
}

func sendExit(ch ssh.Channel, status int, sig syscall.Signal) {
	if sig != 0 {
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{signalName(sig), false, "", ""}))
		return
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalByName(name string) syscall.Signal { return signals[name] }

func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return fmt.Sprintf("SIG%d", int(sig))
}
