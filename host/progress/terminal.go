package progress

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/dibvm/dibvm/host/termsafe"
)

// NewTerminal shows a build on a terminal: a status block at the bottom
// (the step and hook running, the time, a bar and what is left by the
// last build of the same elements), with the build's lines scrolling
// above it. mpb draws the block; a breakpoint's shell gets the terminal
// to itself.
func NewTerminal(out io.Writer) *Reporter {
	t := &terminal{out: out}
	r := newReporter(t)
	t.status = r.Status
	t.start()
	return r
}

// refresh is how often the block is drawn again.
const refresh = 250 * time.Millisecond

type terminal struct {
	out    io.Writer
	status func() Status

	mu   sync.Mutex
	p    *mpb.Progress // nil while paused or closed
	bar  *mpb.Bar
	stop chan struct{}
	buf  []byte // a line not yet ended
}

// barTotal is the bar's scale: per mille.
const barTotal = 1000

func (t *terminal) start() {
	t.p = mpb.New(mpb.WithOutput(t.out), mpb.WithWidth(32), mpb.WithRefreshRate(refresh))
	t.bar = t.p.New(barTotal, mpb.BarStyle(),
		mpb.BarTopExtender(mpb.BarFillerFunc(t.statusLine)),
		mpb.BarFillerMiddleware(t.onlyEstimated),
		mpb.PrependDecorators(decor.Any(t.elapsed)),
		mpb.AppendDecorators(decor.Any(t.left)),
	)
	t.stop = make(chan struct{})
	go t.tick(t.bar, t.stop)
}

// tick moves the bar to where the estimate says the build is. It never
// completes the bar: the build's end does.
func (t *terminal) tick(bar *mpb.Bar, stop chan struct{}) {
	tk := time.NewTicker(refresh)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			bar.SetCurrent(min(int64(t.status().Estimate.Fraction()*barTotal), barTotal-1))
		}
	}
}

// statusLine is the block's first line: what runs, and for how long.
func (t *terminal) statusLine(w io.Writer, st decor.Statistics) error {
	s := t.status()
	line := "starting"
	if s.Step != "" {
		line = termsafe.String(s.Step)
		if s.Hook != "" {
			line += "  " + termsafe.String(s.Hook)
			if s.Element != "" {
				line += " (" + termsafe.String(s.Element) + ")"
			}
		}
		line += "  for " + Duration(time.Since(s.Since))
	}
	_, err := fmt.Fprintln(w, runewidth.Truncate(line, st.AvailableWidth, "…"))
	return err
}

func (t *terminal) elapsed(decor.Statistics) string {
	return Duration(t.status().Elapsed) + " "
}

func (t *terminal) left(decor.Statistics) string {
	s := t.status()
	if !s.Estimated {
		return "no estimate: the first build of these elements"
	}
	return fmt.Sprintf(" %d%%  about %s left", int(s.Estimate.Fraction()*100), Duration(s.Estimate.Left()))
}

// onlyEstimated draws the bar only when there is an estimate to draw.
func (t *terminal) onlyEstimated(base mpb.BarFiller) mpb.BarFiller {
	return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
		if !t.status().Estimated {
			return nil
		}
		return base.Fill(w, st)
	})
}

func (t *terminal) event(Event) {}

func (t *terminal) log() io.Writer { return t }

// Write passes whole lines above the block: mpb counts the lines it
// prints to redraw the block below them.
func (t *terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) >= maxLine && bytes.IndexByte(t.buf, '\n') < 0 {
		t.buf = append(t.buf, '\n') // a line that never ends, in pieces
	}
	i := bytes.LastIndexByte(t.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := bytes.Clone(t.buf[:i+1])
	t.buf = t.buf[i+1:]
	if t.p != nil {
		if _, err := t.p.Write(lines); err == nil {
			return len(p), nil
		}
		// mpb stopped drawing (it gives up on an error): the lines go
		// straight to the terminal from here on.
		t.p.Shutdown()
		close(t.stop)
		t.p, t.bar = nil, nil
	}
	_, err := t.out.Write(lines)
	return len(p), err
}

// pause takes the block off the terminal and writes what is left of the
// build's lines.
func (t *terminal) pause() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.p == nil {
		return
	}
	close(t.stop)
	t.bar.Abort(true)
	t.p.Wait()
	t.p, t.bar = nil, nil
	if len(t.buf) > 0 {
		t.out.Write(append(t.buf, '\n'))
		t.buf = nil
	}
}

func (t *terminal) resume() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.p == nil {
		t.start()
	}
}

func (t *terminal) close() { t.pause() }
