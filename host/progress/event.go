// Package progress shows a build as it goes: it times the build's steps
// and hooks by the host's clock as their events arrive, estimates what
// is left from the last build of the same elements, and shows it all in
// one of three ways: a live status block on a terminal, DIB's
// timestamped lines in a log, or a stream of JSON events for CI systems
// (docs/events.schema.json). At the end it sums the build up.
package progress

import "time"

// Kind is what an event says happened.
type Kind string

const (
	BuildStart Kind = "build-start"
	// StepStart and StepEnd frame a step: dibvm's own (Boot, Convert),
	// a DIB phase (root.d, install.d, ...) or the guest's own steps
	// (api.StepImage, api.StepCommand, api.StepOutputs).
	StepStart Kind = "step-start"
	StepEnd   Kind = "step-end"
	HookStart Kind = "hook-start"
	HookEnd   Kind = "hook-end"
	// Resumed: the build goes on from a checkpoint, after Step (and
	// Hook). Kept: the tree was kept after Step (and Hook).
	Resumed Kind = "checkpoint-resumed"
	Kept    Kind = "checkpoint-kept"
	// Output: an output file was written, with its size and digest.
	Output   Kind = "output"
	BuildEnd Kind = "build-end"
)

// dibvm's own steps, on the host.
const (
	Boot    = "boot"    // the helper VM starts and its agent answers
	Convert = "convert" // the outputs are taken off the output disk
)

// Status of a hook or a build that ended.
const (
	OK     = "ok"
	Failed = "failed"
)

// Event is one thing that happened in a build. The builder fills in what
// happened; the Reporter stamps the time and, for an end, how long since
// its start, by the host's clock: the guest's word on time is not taken.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    Kind      `json:"event"`
	Step    string    `json:"step,omitempty"`
	Hook    string    `json:"hook,omitempty"`
	Element string    `json:"element,omitempty"`
	Status  string    `json:"status,omitempty"`
	Seconds float64   `json:"seconds,omitempty"`
	// Output's file, its size in bytes and SHA-256; for a file hooks
	// wrote beside the image (${IMAGE_NAME}.vmlinuz), the phase whose
	// hooks wrote it.
	Path      string `json:"path,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	EmittedBy string `json:"emitted_by,omitempty"`
	// BuildStart's elements; BuildEnd's error, when it failed.
	Elements []string `json:"elements,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// label names where in the build an event falls, for the estimate.
func (e Event) label() string {
	s := string(e.Kind) + " " + e.Step
	if e.Hook != "" {
		s += "/" + e.Hook
	}
	return s
}
