// Package session runs a build's job in the helper VM: it boots the VM,
// holds the guest's build to the control protocol, opens the break
// shells, keeps checkpoints where the build reaches them, and hands the
// output disk over to host/outputs once the build is complete.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/progress"
	"github.com/dibvm/dibvm/host/termsafe"
	"github.com/dibvm/dibvm/vmimage"
)

// VM is what a session needs of the helper VM. A *machine.Machine stands
// behind it (see machine.go); tests put an in-process fake there.
type VM interface {
	// Run runs cmd in the guest, through the agent.
	Run(cmd agentclient.Command) error
	// Snapshot switches a disk to a new layer (for checkpoints).
	checkpoint.VM
	// Fetch makes a disk readable at DiskPath that far.
	Fetch(serial string, length int64) error
	DiskPath(serial string) string
	// Explain turns an error of the control channel into its reason.
	Explain(err error) error
	// Shutdown stops the guest and keeps its disks; Close removes them.
	Shutdown()
	Close() error
}

// session is one run of a job.
type session struct {
	j     *Job
	start func(context.Context, machine.Options) (VM, error)
	term  *terminal // where a break shell talks to the user
	keep  *checkpoint.Keeper
	// downloads are the packages the proxy served the build, for its
	// lock file.
	downloads *lockfile.Recorder
	// started is when the build started, and appliance the helper's
	// files, for its provenance statement.
	started   time.Time
	appliance *vmimage.Appliance
}

// Run boots the helper VM as mo says and builds j in it.
func Run(ctx context.Context, j *Job, mo machine.Options) error {
	s := &session{j: j, start: startMachine, term: userTerminal, downloads: recorder(j.ImageCache, gateway.Of(mo.Service), j.Offline), started: time.Now(), appliance: mo.Appliance}
	return s.run(ctx, mo)
}

func (s *session) run(ctx context.Context, mo machine.Options) error {
	mo, err := s.machineOptions(mo)
	if err != nil {
		return err
	}
	if s.j.Steps != nil {
		b := checkpoint.Build{Spec: s.j.Spec, Steps: s.j.Steps, ScratchSize: s.j.ScratchSize, VM: helperVM(mo), Out: s.j.Stdout, Downloads: s.downloads, Admits: admits(s.j.Replay, s.j.ReplayName), Shared: s.j.Shared}
		if s.keep, err = checkpoint.StartKeeper(ctx, s.j.Store, s.j.Limits, b); err != nil {
			return err
		}
		// After QEMU has let go of the layers (deferred below).
		defer s.keep.Close()
		if mo, err = s.onLayer(mo); err != nil {
			return err
		}
	}
	if r := s.j.Spec.Resume; r != "" {
		phase, hook, _ := strings.Cut(r, "/")
		s.event(progress.Event{Kind: progress.Resumed, Step: phase, Hook: hook})
	}
	s.event(progress.Event{Kind: progress.StepStart, Step: progress.Boot})
	vm, err := s.start(ctx, mo)
	if err != nil {
		return err
	}
	defer vm.Close()
	s.event(progress.Event{Kind: progress.StepEnd, Step: progress.Boot})
	// A signal or the timeout stops the VM, which ends the build.
	defer context.AfterFunc(ctx, func() { vm.Close() })()
	result, err := s.build(ctx, vm)
	if err != nil {
		return err
	}
	return s.handOver(ctx, vm, result)
}

// build runs the guest's build, holding its control messages to the
// protocol, and returns what it reported of its outputs.
func (s *session) build(ctx context.Context, vm VM) (*api.Result, error) {
	fmt.Fprintf(s.j.Stdout, "Building elements: %s\n", strings.Join(s.j.Spec.Elements, " "))
	// The build's stdin carries only the host's word: keep the tree at a
	// point or go on, after a point, a checkpoint or a breakpoint.
	words, reply := io.Pipe()
	defer reply.Close()
	// Once the build or the VM ends, nobody reads the words: the host's
	// next one must not wait for a reader (a guest that asks without
	// reading would otherwise hold the host for good).
	endWords := func() { words.CloseWithError(errors.New("the build has ended")) }
	defer context.AfterFunc(ctx, endWords)()
	ctl := s.newControl(vm, func(word string) { io.WriteString(reply, word+"\n") })
	ctlR, ctlW := io.Pipe()
	ctlDone := make(chan struct{})
	go func() { defer close(ctlDone); ctl.read(ctlR) }()
	// Everything people read comes on the build's stderr; its stdout
	// carries only control messages.
	err := vm.Run(agentclient.Command{
		Line:  api.BuildLine,
		Stdin: words, Stdout: ctlW, Stderr: s.j.Stdout,
	})
	endWords()
	s.j.Stdout.Flush()
	ctlW.Close()
	<-ctlDone
	if ctl.err != nil {
		return nil, ctl.err
	}
	if err := vm.Explain(err); err != nil {
		return nil, s.failed(vm, ctl, err)
	}
	if ctl.result == nil {
		return nil, errors.New("the build ended without reporting its outputs")
	}
	return ctl.result, nil
}

// newControl is the control of the build's messages in vm, which gives
// the build the host's word through reply.
func (s *session) newControl(vm VM, reply func(word string)) *control {
	breaks, _ := breakpoint.Parse(s.j.Spec.Break) // checked before the job was made
	return &control{
		breaks: breaks, types: s.j.Outputs.Types, image: s.j.Spec.ImageName, diskSize: s.j.ScratchSize,
		command: s.j.Spec.Open && s.j.Spec.Command != "",
		seq:     newSequence(s.j.Order, s.j.Spec.Resume),
		wants:   s.keep.Wants,
		reply:   reply,
		onBreak: func(b api.Break) {
			if s.j.Progress != nil {
				s.j.Progress.Pause()
				defer s.j.Progress.Resume()
			}
			s.breakShell(vm, b)
		},
		onOffList: func(why string) {
			if s.keep != nil {
				s.keep.Stop("the build left the hooks of its elements: " + why)
			}
		},
		onCheckpoint: func(cp *api.Checkpoint) {
			if s.keep != nil && s.keep.Keep(vm, cp) {
				s.event(progress.Event{Kind: progress.Kept, Step: cp.Phase, Hook: cp.Hook})
			}
		},
		onHook: func(h *api.Hook) {
			e := progress.Event{Kind: progress.HookStart, Step: h.Phase, Hook: h.Script, Element: elementOf(s.j.Hooks, h.Phase, h.Script)}
			if h.Done {
				e.Kind, e.Status = progress.HookEnd, progress.OK
			}
			s.event(e)
		},
		onStep: func(st *api.Step) {
			e := progress.Event{Kind: progress.StepStart, Step: st.Name}
			if st.Done {
				e.Kind = progress.StepEnd
			}
			s.event(e)
		},
		stop: func() { vm.Close() },
	}
}

// failed is the error of a build that failed with err: the hook that
// failed, or what the build said, and whether it filled a disk.
func (s *session) failed(vm VM, ctl *control, err error) error {
	full := s.fullDisk(vm)
	switch {
	case ctl.failure != nil:
		el := elementOf(s.j.Hooks, ctl.failure.Phase, ctl.failure.Script)
		s.event(progress.Event{Kind: progress.HookEnd, Step: ctl.failure.Phase, Hook: ctl.failure.Script, Element: el, Status: progress.Failed})
		return &HookError{Failure: ctl.failure, Element: el, Hint: hookHint(ctl.failure, full)}
	case ctl.buildErr != "":
		err = errors.New(termsafe.String(ctl.buildErr))
	}
	if full != "" {
		return fmt.Errorf("the build failed in the helper VM: %w\n%s", err, full)
	}
	return fmt.Errorf("the build failed in the helper VM: %w", err)
}

// handOver takes the outputs r names off the output disk of the stopped
// VM into place.
func (s *session) handOver(ctx context.Context, vm VM, r *api.Result) error {
	// QEMU must let go of the output disk before it is read.
	vm.Shutdown()
	s.event(progress.Event{Kind: progress.StepStart, Step: progress.Convert})
	if err := vm.Fetch(api.OutputSerial, r.End()); err != nil {
		return err
	}
	o := s.j.Outputs
	o.Lock = s.lockFile
	written, err := outputs.Write(ctx, o, vm.DiskPath(api.OutputSerial), r)
	if err != nil {
		return err
	}
	if s.j.Provenance != nil {
		ws, err := s.provenance(written)
		if err != nil {
			return err
		}
		written = append(written, ws...)
	}
	s.event(progress.Event{Kind: progress.StepEnd, Step: progress.Convert})
	for _, w := range written {
		s.event(progress.Event{Kind: progress.Output, Path: w.Path, Size: w.Size, SHA256: w.SHA256, EmittedBy: w.EmittedBy})
	}
	return nil
}

// event tells the job's Progress, if any, of e.
func (s *session) event(e progress.Event) {
	if s.j.Progress != nil {
		s.j.Progress.Event(e)
	}
}

// fullDisk says, for a failed build, whether it filled the scratch or
// the output disk: the host sees that on the disks' sparse files, without
// taking the guest's word. ext4 leaves its inode tables unwritten on the
// scratch disk, so a full one is at least nine tenths written.
func (s *session) fullDisk(vm VM) string {
	for _, d := range []struct{ serial, what string }{
		{api.ScratchSerial, "scratch disk, which holds the tree, the downloads and the hooks' work files,"},
		{api.OutputSerial, "output disk, which holds the image and the tree's outputs,"},
	} {
		if n, ok := allocated(vm.DiskPath(d.serial)); ok && n >= s.j.ScratchSize/10*9 {
			return fmt.Sprintf("The build's %s is full (%d MiB). Give it more room with --scratch-size, e.g. --scratch-size %dG.",
				d.what, s.j.ScratchSize>>20, max(2*s.j.ScratchSize>>30, 1))
		}
	}
	return ""
}
