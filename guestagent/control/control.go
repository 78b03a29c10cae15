// Package control is the build's line to the host: control frames out on
// the build's own stdout, the host's words in on its stdin.
package control

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Host is the host as the build speaks to it.
type Host struct {
	ctl io.Writer     // control frames (api.Message)
	in  *bufio.Reader // the host's words, a line each
	log io.Writer     // where a frame that could not be sent is told
}

// New speaks to the host with frames on ctl and words read from in, and
// tells log of a frame Tell could not send.
func New(ctl io.Writer, in io.Reader, log io.Writer) *Host {
	return &Host{ctl: ctl, in: bufio.NewReader(in), log: log}
}

// Open takes the process's stdout for control frames (see Stream) and
// its stdin for the host's words; failures to send are told on stderr.
func Open() (*Host, error) {
	ctl, err := Stream()
	if err != nil {
		return nil, err
	}
	return New(ctl, os.Stdin, os.Stderr), nil
}

// Stream takes the process's stdout for control frames and points file
// descriptor 1 at stderr, so that nothing else, not the build's own code
// nor a child that inherits it, can write to the host's control stream
// by printing.
func Stream() (*os.File, error) {
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("keep stdout for control messages: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("point stdout at stderr: %w", err)
	}
	return os.NewFile(uintptr(fd), "control"), nil
}

// Send writes m to the host.
func (h *Host) Send(m api.Message) error {
	return api.WriteMessage(h.ctl, m)
}

// Tell sends the host m; a failure is only told to people, as the build
// goes on or ends either way.
func (h *Host) Tell(m api.Message) {
	if err := h.Send(m); err != nil {
		fmt.Fprintf(h.log, api.BuildCommand+": tell the host (%s): %v\n", m.Kind(), err)
	}
}

// ReadLine reads the host's next line, with its newline.
func (h *Host) ReadLine() (string, error) {
	return h.in.ReadString('\n')
}
