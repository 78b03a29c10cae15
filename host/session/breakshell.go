package session

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/termsafe"
)

// terminal is where a break shell talks to the user.
type terminal struct {
	stdin          *os.File // its size and raw mode, when it is a terminal
	input          *inputRelay
	stdout, stderr io.Writer
}

// userTerminal is dibvm's own stdin, stdout and stderr.
var userTerminal = &terminal{stdin: os.Stdin, input: &inputRelay{src: os.Stdin}, stdout: os.Stdout, stderr: os.Stderr}

// breakShell opens the shell of a breakpoint on the user's terminal (or
// on dibvm's stdin and stdout, when they are not a terminal) and returns
// when the user leaves it. The shell is the user's even when the build's
// output goes only to a log file.
//
// The shell's output reaches the terminal raw, not through termsafe: it
// is an interactive session the user asked for with break=, at a point
// the host checked they named, and a shell on a pty needs the terminal's
// sequences (an editor, a pager, the prompt), as ssh to a host one does
// not own gives them. What dibvm prints around it (the point, the
// shell's end) is the user's own text or goes through termsafe.
func (s *session) breakShell(vm VM, b api.Break) {
	where := "in the helper VM"
	if b.Chroot {
		where = "in the image's chroot"
	}
	t := s.term
	fmt.Fprintf(t.stderr, "dibvm: stopped at %s; a shell is open %s. Exit it to go on.\n", b.Point, where)
	cmd := agentclient.Command{
		Line:  api.BreakShellLine,
		Stdin: t.input.session(), Stdout: t.stdout, Stderr: t.stderr,
	}
	defer t.input.endSession()
	if fd := int(t.stdin.Fd()); term.IsTerminal(fd) {
		cols, rows, err := term.GetSize(fd)
		if err == nil {
			cmd.Terminal = &agentclient.Terminal{Term: s.j.Term, Cols: cols, Rows: rows}
			if old, err := term.MakeRaw(fd); err == nil {
				defer term.Restore(fd, old)
			}
		}
	}
	if err := vm.Run(cmd); err != nil {
		fmt.Fprintf(t.stderr, "dibvm: the shell at %s ended: %s\n", b.Point, termsafe.String(err.Error()))
	}
}

// inputRelay reads src (dibvm's stdin) once, for the whole run, and
// hands it to one shell at a time: each shell gets a reader that ends
// with the shell, so that input typed after it is kept for the next
// breakpoint rather than swallowed by a finished session.
type inputRelay struct {
	src  io.Reader
	once sync.Once
	data chan []byte
	mu   sync.Mutex
	cur  *sessionReader
}

func (r *inputRelay) start() {
	r.once.Do(func() {
		r.data = make(chan []byte)
		go func() {
			defer close(r.data)
			for {
				buf := make([]byte, 4096)
				n, err := r.src.Read(buf)
				if n > 0 {
					r.data <- buf[:n]
				}
				if err != nil {
					return
				}
			}
		}()
	})
}

func (r *inputRelay) session() io.Reader {
	r.start()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = &sessionReader{relay: r, done: make(chan struct{})}
	return r.cur
}

func (r *inputRelay) endSession() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		close(r.cur.done)
		r.cur = nil
	}
}

type sessionReader struct {
	relay *inputRelay
	done  chan struct{}
	rest  []byte
}

func (s *sessionReader) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		select {
		case b, ok := <-s.relay.data:
			if !ok {
				return 0, io.EOF
			}
			s.rest = b
		case <-s.done:
			return 0, io.EOF
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}
