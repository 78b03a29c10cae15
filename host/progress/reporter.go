package progress

import (
	"io"
	"sync"
	"time"
)

// Reporter takes a build's events as they come, times them, keeps what
// the summary and the next build's estimate need, and shows them through
// its view. It is safe for use by several goroutines. It never calls its
// view while it holds mu: the terminal view's drawing calls Status,
// which takes mu.
type Reporter struct {
	mu   sync.Mutex
	view view
	now  func() time.Time

	start time.Time
	// The estimate: the last build's record, and the last event of this
	// build found in it.
	last      *Record
	mark      string
	markAt    time.Time
	timings   *Timings
	timingKey string

	// This build's record: the label and time of its last event.
	rec     Record
	prev    string
	prevAt  time.Time
	started map[string]time.Time // each open step or hook, by label
	cur     Status
	sum     Summary
}

// Status is where the build is, for a live view.
type Status struct {
	Step, Hook, Element string
	Since               time.Time // when the step or hook began
	Elapsed             time.Duration
	Estimate            Estimate
	Estimated           bool // there is an earlier build to estimate from
}

// view shows a build: its events, and the build's own text.
type view interface {
	event(Event)
	// log is where the build's text goes.
	log() io.Writer
	// pause gives the terminal to someone else (a breakpoint's shell)
	// until resume.
	pause()
	resume()
	close()
}

func newReporter(v view) *Reporter {
	return &Reporter{view: v, now: time.Now, started: map[string]time.Time{}}
}

// Estimating has the reporter estimate from the last build recorded in
// t under key, and record this one there if it succeeds.
func (r *Reporter) Estimating(t *Timings, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timings, r.timingKey = t, key
	r.last = t.Load(key)
}

// Log is where the build's own text goes: the hooks' output and DIB's
// lines. The views pass it on as it comes: a build hands it over
// already through termsafe (see plan.Prepare), once, for every view.
// What the views make of events themselves (names of steps, hooks,
// elements and outputs) they show through termsafe.
func (r *Reporter) Log() io.Writer { return r.view.log() }

// Pause and Resume hand the terminal to a breakpoint's shell and back.
func (r *Reporter) Pause()  { r.view.pause() }
func (r *Reporter) Resume() { r.view.resume() }

// Event shows e, stamped with the time and, for an end, how long since
// its start.
func (r *Reporter) Event(e Event) {
	r.mu.Lock()
	now := r.now()
	e.Time = now
	switch e.Kind {
	case BuildStart:
		r.start = now
		r.sum = Summary{}
	case StepStart, HookStart:
		r.started[e.label()] = now
		r.cur.Step, r.cur.Since = e.Step, now
		r.cur.Hook, r.cur.Element = e.Hook, e.Element
	case StepEnd, HookEnd:
		begin := e
		begin.Kind = StepStart
		if e.Kind == HookEnd {
			begin.Kind = HookStart
		}
		if t, ok := r.started[begin.label()]; ok {
			e.Seconds = now.Sub(t).Seconds()
			delete(r.started, begin.label())
		}
		r.sum.add(e)
		if e.Kind == HookEnd {
			r.cur.Hook, r.cur.Element, r.cur.Since = "", "", now
		}
	case Resumed:
		r.sum.Resumed = e.Step
		if e.Hook != "" {
			r.sum.Resumed += "/" + e.Hook
		}
	case Output:
		r.sum.Outputs = append(r.sum.Outputs, e)
	case BuildEnd:
		if !r.start.IsZero() { // else it failed before it started
			e.Seconds = now.Sub(r.start).Seconds()
			r.sum.Total = now.Sub(r.start)
		}
		r.sum.Err = e.Error
	}
	r.segment(e, now)
	r.mu.Unlock()
	r.view.event(e)
}

// segment adds to this build's record the time since its last event,
// and moves the estimate's mark to e if the last record has it.
func (r *Reporter) segment(e Event, now time.Time) {
	if r.prev != "" && len(r.rec.Segments) < maxSegments {
		r.rec.Segments = append(r.rec.Segments, Segment{Label: r.prev, Seconds: now.Sub(r.prevAt).Seconds()})
	}
	r.prev, r.prevAt = e.label(), now
	if r.last == nil {
		return
	}
	if _, _, ok := r.last.at(e.label()); ok {
		r.mark, r.markAt = e.label(), now
	}
}

// Status is where the build is now.
func (r *Reporter) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	s := r.cur
	if !r.start.IsZero() {
		s.Elapsed = now.Sub(r.start)
	}
	s.Estimate, s.Estimated = r.last.estimate(r.mark, now.Sub(r.markAt))
	if !s.Estimated && r.last != nil {
		// Before the first event the last build knew of.
		s.Estimate, s.Estimated = Estimate{Total: r.last.total()}, true
	}
	return s
}

// Finish ends the build's events with its end, err when it failed,
// closes the view, and keeps this build's record for the next estimate
// if it succeeded. It returns the build's summary.
func (r *Reporter) Finish(err error) *Summary {
	e := Event{Kind: BuildEnd, Status: OK}
	if err != nil {
		e.Status, e.Error = Failed, err.Error()
	}
	r.Event(e)
	r.view.close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.timings != nil {
		rec := r.rec
		rec.merge(r.last)
		// An estimate is never worth failing a build for.
		r.timings.Save(r.timingKey, &rec)
	}
	sum := r.sum
	return &sum
}
