package dibbuild

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// keptStep is a phase a build can be kept after (api.CheckpointPhases),
// with the phases since the one before; run goes on after the hook of
// its own phase given (empty: from its start).
type keptStep struct {
	phase string
	run   func(after string) error
}

// keptSteps are the build's steps up to the tree's end, in order.
func (b *build) keptSteps() []keptStep {
	return []keptStep{
		{"root.d", func(after string) error {
			return b.step("root.d", func() error {
				if err := b.outside("root.d", after); err != nil {
					return err
				}
				return b.checkRoot()
			})
		}},
		{"pre-install.d", func(after string) error {
			if after == "" {
				if err := b.presetIdentities(); err != nil {
					return err
				}
				if err := b.step("extra-data.d", func() error { return b.outside("extra-data.d", "") }); err != nil {
					return err
				}
			}
			return b.step("pre-install.d", func() error { return b.inside("pre-install.d", after) })
		}},
		{"install.d", func(after string) error {
			return b.step("install.d", func() error {
				if err := b.inside("install.d", after); err != nil {
					return err
				}
				return b.extraPackages()
			})
		}},
		{"post-install.d", func(after string) error {
			return b.step("post-install.d", func() error { return b.inside("post-install.d", after) })
		}},
	}
}

// planned is what a resumed build does with one kept step: skip it,
// run it whole, or go on after one of its hooks.
type planned struct {
	run   bool
	after string
}

// schedule plans the kept steps of phases for a build resumed at resume
// (api.Spec.Resume: "", a phase, or phase/hook): those up to where the
// scratch disk was kept are skipped.
func schedule(phases []string, resume string) []planned {
	phase, after, _ := strings.Cut(resume, "/")
	skip := phase != ""
	out := make([]planned, len(phases))
	for i, p := range phases {
		switch {
		case skip && p == phase && after != "":
			skip = false
			out[i] = planned{run: true, after: after}
		case skip:
			skip = p != phase
		default:
			out[i] = planned{run: true}
		}
	}
	return out
}

// buildTree runs the kept steps as scheduled, each followed by the point
// where the host may keep the tree; after root.d, the target is mounted
// for chrooted hooks.
func (b *build) buildTree() error {
	steps := b.keptSteps()
	phases := make([]string, len(steps))
	for i, st := range steps {
		phases[i] = st.phase
	}
	for i, plan := range schedule(phases, b.spec.Resume) {
		st := steps[i]
		if st.phase == "root.d" && b.spec.Open {
			// The image is the root: nothing makes one.
			plan.run = false
		}
		if plan.run {
			if err := st.run(plan.after); err != nil {
				return err
			}
			if err := b.points.Point(st.phase, ""); err != nil {
				return err
			}
		}
		if st.phase == "root.d" {
			if err := b.mountTarget(); err != nil {
				return err
			}
		}
	}
	return nil
}

// namedStep is a step of the build after the tree.
type namedStep struct {
	name string
	run  func() error
}

// imageSteps are the steps from the tree to the finished image, in order.
func (b *build) imageSteps() []namedStep {
	steps := []namedStep{
		{"post-root.d", func() error { return b.outside("post-root.d", "") }},
		{api.StepImage, b.blockDevice},
		{"pre-finalise.d", func() error { return b.outside("pre-finalise.d", "") }},
		{"finalise.d", func() error { return b.inside("finalise.d", "") }},
	}
	if b.spec.Open && b.spec.Command != "" {
		steps = append(steps, namedStep{api.StepCommand, b.command})
	}
	return steps
}

// command runs Spec.Command as root in the opened image's root, with
// the hooks' environment, once the elements' chroot phases are done.
func (b *build) command() error {
	fmt.Fprintf(b.out, "Running in the image: %s\n", b.spec.Command)
	cmd := exec.Command("chroot", b.target, "/bin/sh", "-c", b.spec.Command)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the command after -- failed in the image: %w", err)
	}
	return nil
}

// finishImage runs the image steps.
func (b *build) finishImage() error {
	for _, st := range b.imageSteps() {
		if err := b.step(st.name, st.run); err != nil {
			return err
		}
	}
	return nil
}
