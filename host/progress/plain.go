package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dibvm/dibvm/host/termsafe"
)

// NewPlain shows a build as a log does, in CI logs and files: the
// build's lines, each stamped with the time as DIB stamps them, and a
// line at the end of each step with its time.
func NewPlain(w io.Writer) *Reporter {
	return newReporter(&plain{stampedLog{&stamped{w: w, now: time.Now}}})
}

// NewJSON writes one JSON event per line to events (see
// docs/events.schema.json), and the build's lines, stamped, to log.
func NewJSON(events, log io.Writer) *Reporter {
	return newReporter(&jsonView{enc: json.NewEncoder(events), stampedLog: stampedLog{&stamped{w: log, now: time.Now}}})
}

// stampedLog is the part of a view that writes the build's lines
// stamped, and has no terminal to give up.
type stampedLog struct{ lines *stamped }

func (l stampedLog) log() io.Writer { return l.lines }
func (l stampedLog) pause()         { l.lines.flush() }
func (l stampedLog) resume()        {}
func (l stampedLog) close()         { l.lines.flush() }

type plain struct{ stampedLog }

func (p *plain) event(e Event) {
	switch e.Kind {
	case StepEnd:
		fmt.Fprintf(p.lines, "dibvm: %s took %s\n", termsafe.String(e.Step), Duration(seconds(e.Seconds)))
	case BuildEnd:
		p.lines.flush()
	}
}

type jsonView struct {
	stampedLog
	mu  sync.Mutex
	enc *json.Encoder
}

func (j *jsonView) event(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enc.Encode(e)
}

// stamped writes whole lines to w, each stamped with the time its first
// byte came, as DIB's log lines are ("2006-01-02 15:04:05.000 | ").
type stamped struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	buf   []byte
	since time.Time
}

const stampLayout = "2006-01-02 15:04:05.000"

// maxLine bounds a line held back for its end: the guest's output is
// anyone's, and a line that never ends is shown in pieces instead.
const maxLine = 64 << 10

func (s *stamped) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if len(s.buf) == 0 {
			s.since = s.now()
		}
		i := bytes.IndexByte(p, '\n')
		if room := maxLine - len(s.buf); i < 0 || i >= room {
			take := min(len(p), room)
			s.buf = append(s.buf, p[:take]...)
			p = p[take:]
			if len(s.buf) >= maxLine {
				s.buf = append(s.buf, '\n')
				if err := s.writeLine(); err != nil {
					return n, err
				}
			}
			continue
		}
		s.buf = append(s.buf, p[:i+1]...)
		p = p[i+1:]
		if err := s.writeLine(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *stamped) writeLine() error {
	line := append([]byte(s.since.Format(stampLayout)+" | "), s.buf...)
	s.buf = s.buf[:0]
	_, err := s.w.Write(line)
	return err
}

// flush writes a line not yet ended.
func (s *stamped) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		s.buf = append(s.buf, '\n')
		s.writeLine()
	}
}
