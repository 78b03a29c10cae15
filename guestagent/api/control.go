package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// The build talks to the host on its own stdout, and on nothing else:
// every line people read (DIB's progress, the hooks' output, the build's
// own notes) goes to its stderr. So no hook can print its way into a
// control message, however it tries. Each message is a frame: the four
// bytes of Magic, the length of the JSON that follows as a big-endian
// uint32, and that JSON, one Message. The host still treats every frame
// as hostile (a hook is root in the guest and may write to any file
// there): it checks lengths, fields and what each message asks for.

// Magic starts every control frame.
const Magic = "dibC"

// MaxMessage bounds a frame's JSON.
const MaxMessage = 64 << 10

// Message is one control message: exactly one field is set.
type Message struct {
	// Break: the build stopped at a breakpoint and waits, on its stdin,
	// for the host's go-ahead.
	Break *Break `json:"break,omitempty"`
	// Result: the build succeeded and wrote its outputs to the output
	// disk. It is the last message.
	Result *Result `json:"result,omitempty"`
	// Failure: a hook failed. It is the last message.
	Failure *Failure `json:"failure,omitempty"`
	// Error: the build failed outside any hook. It is the last message.
	Error string `json:"error,omitempty"`
	// Point: the build reached a point where its tree may be kept (the
	// end of a phase of Spec.Checkpoints, or a hook of one with more to
	// come) and waits, on its stdin, for the host's word: ReplyKeep or
	// ReplyGo. The host alone decides, by the hooks it saw start and end
	// and by its own clock.
	Point *Point `json:"point,omitempty"`
	// Checkpoint: the host said ReplyKeep at the point the build is at;
	// the build froze the scratch disk's filesystem and waits, on its
	// stdin, for ReplyGo once the host has switched the disk to a new
	// layer.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Hook: the build is about to start a hook, or one has just
	// succeeded (Done). The host shows the build's progress by them, and
	// holds the build to the hooks it merged, in their order, each once.
	Hook *Hook `json:"hook,omitempty"`
	// Step: the build starts one of its steps, or has finished it (Done):
	// a phase (elements.Phases) or a step of its own (Steps).
	Step *Step `json:"step,omitempty"`
}

// Hook names a hook of a phase.
type Hook struct {
	Phase  string `json:"phase"`
	Script string `json:"script"`
	Done   bool   `json:"done,omitempty"`
}

// Step is a phase or one of the build's own steps, starting or done.
type Step struct {
	Name string `json:"name"`
	Done bool   `json:"done,omitempty"`
}

// The build's own steps, besides the phases: making the disk image and
// copying the tree into it, running the command of a build that opens
// an image (Spec.Command), and writing the tree's outputs (tar,
// squashfs) and the manifests.
const (
	StepImage   = "image"
	StepCommand = "command"
	StepOutputs = "outputs"
)

// Point is a place in the build where its tree may be kept: the end of
// Phase, or after its hook Hook, the phase's later hooks still to run.
type Point struct {
	Phase string `json:"phase"`
	Hook  string `json:"hook,omitempty"`
}

// The host's words on the build's stdin, one a line: at a Point, keep
// the tree there or go on; after a Checkpoint or a Break, go on.
const (
	ReplyKeep = "keep"
	ReplyGo   = "go"
)

// Checkpoint is what the build says when it has brought its tree to rest
// at the point where the host said ReplyKeep.
type Checkpoint struct {
	Phase string `json:"phase"`
	// Hook, when set, is the hook of Phase after which the tree is
	// kept, the phase's later hooks still to run.
	Hook string `json:"hook,omitempty"`
	// Unfrozen, when set, says why the build could not bring the tree to
	// rest: the host keeps nothing there.
	Unfrozen string `json:"unfrozen,omitempty"`
	// Suites are the APT suites of the tree's package lists and the
	// Date of each one's Release file, for the host to record.
	Suites []Suite `json:"suites,omitempty"`
}

// Suite is an APT suite and the Date of its Release file.
type Suite struct {
	Name string `json:"name"`
	Date string `json:"date"`
}

// Kind names the message's field, for errors.
func (m Message) Kind() string {
	switch k := m.kinds(); len(k) {
	case 0:
		return "empty message"
	case 1:
		return k[0]
	default:
		return fmt.Sprintf("message of %d kinds %v", len(k), k)
	}
}

func (m Message) kinds() []string {
	var k []string
	if m.Break != nil {
		k = append(k, "break")
	}
	if m.Result != nil {
		k = append(k, "result")
	}
	if m.Failure != nil {
		k = append(k, "failure")
	}
	if m.Error != "" {
		k = append(k, "error")
	}
	if m.Point != nil {
		k = append(k, "point")
	}
	if m.Checkpoint != nil {
		k = append(k, "checkpoint")
	}
	if m.Hook != nil {
		k = append(k, "hook")
	}
	if m.Step != nil {
		k = append(k, "step")
	}
	return k
}

// Break is what the build says at a breakpoint.
type Break struct {
	Point  string `json:"point"`
	Chroot bool   `json:"chroot"` // the shell belongs inside the target
}

// Failure describes a hook that failed.
type Failure struct {
	Phase  string   `json:"phase"`
	Script string   `json:"script"`
	Status int      `json:"status"`
	Signal string   `json:"signal,omitempty"`
	Tail   []string `json:"tail"` // its last lines of output
}

func (f *Failure) Error() string {
	how := fmt.Sprintf("exit status %d", f.Status)
	if f.Signal != "" {
		how = "killed by " + f.Signal
	}
	return fmt.Sprintf("%s/%s failed: %s", f.Phase, f.Script, how)
}

// ExtraPackagesScript is the Script of the Failure the build reports when
// installing the -p packages (after install.d, so its Phase is
// install.d) fails: no hook's name, so the host accepts it as this one
// report's own.
const ExtraPackagesScript = "install-packages (-p)"

// MaxTailLine bounds each line of a failure's tail: the guest keeps no
// more, so that a report fits one message, and the host shows no more.
const MaxTailLine = 1024

// ShortenTailLine cuts l to MaxTailLine bytes, marking the cut.
func ShortenTailLine(l string) string {
	if len(l) <= MaxTailLine {
		return l
	}
	return l[:MaxTailLine] + "…"
}

// WriteMessage writes m as one frame.
func WriteMessage(w io.Writer, m Message) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(js) > MaxMessage {
		return fmt.Errorf("control message %s is %d bytes, more than %d", m.Kind(), len(js), MaxMessage)
	}
	frame := make([]byte, 0, 8+len(js))
	frame = append(frame, Magic...)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(js)))
	_, err = w.Write(append(frame, js...))
	return err
}

// ProtocolError is a control stream that breaks the framing or the
// message format: nothing after it can be trusted.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string {
	return "the helper VM broke the control protocol: " + e.Reason
}

// ReadMessage reads one frame. It returns io.EOF at a clean end of the
// stream, and a *ProtocolError for anything else that is not exactly one
// well-formed message.
func ReadMessage(r io.Reader) (Message, error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF {
			return Message{}, io.EOF
		}
		return Message{}, &ProtocolError{fmt.Sprintf("the stream ended inside a frame header (%v)", err)}
	}
	if string(head[:4]) != Magic {
		return Message{}, &ProtocolError{fmt.Sprintf("a frame starts with %q, not the control magic: something other than the build wrote to its control stream", head[:4])}
	}
	n := binary.BigEndian.Uint32(head[4:])
	if n > MaxMessage {
		return Message{}, &ProtocolError{fmt.Sprintf("a frame claims %d bytes, more than the %d a message may have", n, MaxMessage)}
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return Message{}, &ProtocolError{fmt.Sprintf("the stream ended inside a %d-byte frame (%v)", n, err)}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var m Message
	if err := dec.Decode(&m); err != nil {
		return Message{}, &ProtocolError{fmt.Sprintf("a frame is not a control message: %v", err)}
	}
	if dec.More() {
		return Message{}, &ProtocolError{"a frame holds more than one JSON value"}
	}
	if k := m.kinds(); len(k) != 1 {
		return Message{}, &ProtocolError{fmt.Sprintf("a frame holds %d kinds of message %v; want exactly one of break, point, checkpoint, hook, step, result, failure, error", len(k), k)}
	}
	// What the build writes, WriteMessage bounds as encoded; a frame can
	// hold a message that encodes longer (json.Marshal escapes <, > and
	// & and U+2028 as six bytes, and writes a bad byte as three). No
	// build wrote such a frame: reader and writer agree on the bound.
	if js, err := json.Marshal(m); err != nil || len(js) > MaxMessage {
		return Message{}, &ProtocolError{fmt.Sprintf("a frame holds a %s message that is more than %d bytes as the build writes it", m.Kind(), MaxMessage)}
	}
	return m, nil
}
