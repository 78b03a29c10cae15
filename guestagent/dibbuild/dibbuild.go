// Package dibbuild runs a DIB build inside the helper VM, phase by phase
// in DIB's order: the guest's `/init dib-build <input dir>`.
//
// It lays out the build directories on the scratch disk, runs each
// phase's hooks with hookrunner, outside the target or chrooted into it
// (chroot), stops where break= asks (breakshell) and where the host may
// keep the tree (checkpoint), makes the disk image (diskimage) and writes
// the outputs to the output disk (outputdisk).
package dibbuild

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/breakshell"
	"github.com/dibvm/dibvm/guestagent/checkpoint"
	"github.com/dibvm/dibvm/guestagent/chroot"
	"github.com/dibvm/dibvm/guestagent/control"
	"github.com/dibvm/dibvm/guestagent/diskimage"
	"github.com/dibvm/dibvm/guestagent/emitted"
	"github.com/dibvm/dibvm/guestagent/hostloopback"
	"github.com/dibvm/dibvm/guestagent/imageroot"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// Layout of the scratch disk, mounted at root.
const root = "/build"

// emittedDir is IMAGE_NAME's directory: the files hooks write beside the
// image go there and then to the host, beside the image. It is the same
// whatever directory -o names, so that a checkpoint's key (which covers
// IMAGE_NAME) changes with the image's name alone; and it is on the
// scratch disk, so that a kept tree keeps what hooks wrote there before
// it.
const emittedDir = root + "/out"

type build struct {
	spec     *api.Spec
	input    string
	hooks    string // TMP_HOOKS_PATH
	elements string // the elements' own files
	built    string // where the tree is built
	target   string // TMP_MOUNT_PATH, TARGET_ROOT: the tree, then the image
	// final is the finished tree the tree outputs are made of: the
	// target, unless a reproducible build's image was made again from a
	// copy of it (see reproduce).
	final   string
	chroot  *chroot.Target
	img     *diskimage.Image
	work    string    // TMP_BUILD_DIR
	out     io.Writer // what people read: DIB's lines, the hooks' output
	host    *control.Host
	run     toolrun.Runner // the tools the build execs
	env     []string
	breaks  *breakshell.Breaks
	points  *checkpoint.Points
	lent    map[string]string  // variable → device of the host's file lent to it
	emitted *emitted.Dir       // what hooks write beside the image
	opened  *imageroot.Mounted // the existing image a build opens (Spec.Open)
}

// Main runs the build described in inputDir and returns the exit status.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: "+api.BuildCommand+" INPUT_DIR")
		return 2
	}
	host, err := control.Open()
	if err != nil {
		fmt.Fprintf(os.Stderr, api.BuildCommand+": %v\n", err)
		return 1
	}
	b := &build{input: args[0], out: os.Stderr, host: host, run: toolrun.Exec{}}
	err = b.runAll()
	var f *api.Failure
	if errors.As(err, &f) {
		b.stopOnError(false)
	}
	b.unmountTarget()
	if err != nil && b.opened != nil {
		b.closeImage() // the host throws its layer away
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, &f):
		b.host.Tell(api.Message{Failure: f})
	default:
		b.host.Tell(api.Message{Error: err.Error()})
	}
	return 1
}

// runAll is the whole build: the tree, the image, the outputs. A build
// that opens an existing image (Spec.Open) has it as its tree, and
// makes no image.
func (b *build) runAll() error {
	if err := b.load(); err != nil {
		return err
	}
	relays, err := hostloopback.Start(b.spec.HostLoopback, os.Getenv("http_proxy"))
	if err != nil {
		return err
	}
	defer relays.Close()
	if err := b.prepare(); err != nil {
		return err
	}
	if err := b.buildTree(); err != nil {
		return err
	}
	if err := b.finishImage(); err != nil {
		return err
	}
	b.unmountTarget()
	if err := b.step("cleanup.d", func() error { return b.outside("cleanup.d", "") }); err != nil {
		return err
	}
	if b.opened != nil {
		// The image's own /tmp is left as it was: a build empties only
		// the tree it made.
		if err := b.chroot.RestoreResolvConf(); err != nil {
			return err
		}
		// The host takes the image's disk as the guest leaves it.
		if err := b.closeImage(); err != nil {
			return err
		}
	} else if err := b.chroot.Finish(); err != nil {
		return err
	}
	return b.writeOutputs()
}

// load reads the build spec and its breakpoints.
func (b *build) load() error {
	data, err := os.ReadFile(filepath.Join(b.input, api.SpecFile))
	if err != nil {
		return err
	}
	if b.spec, err = api.ParseSpec(data); err != nil {
		return err
	}
	b.breaks, err = breakshell.New(b.spec.Break, b.host, b.out)
	return err
}

// step tells the host that a step starts, runs it, and tells the host
// it is done. A phase without hooks is no step: nothing of it shows.
func (b *build) step(name string, run func() error) error {
	if strings.HasSuffix(name, ".d") && !exists(filepath.Join(b.hooks, name)) {
		return run()
	}
	if name == api.StepImage && b.spec.Layout == nil {
		return nil
	}
	b.host.Tell(api.Message{Step: &api.Step{Name: name}})
	if err := run(); err != nil {
		return err
	}
	b.host.Tell(api.Message{Step: &api.Step{Name: name, Done: true}})
	return nil
}

// stop pauses the build at a breakpoint, if break= names it, with a
// shell in the target's chroot or beside it.
func (b *build) stop(point string, inChroot bool) error {
	return b.breaks.Stop(point, b.shell(inChroot))
}

// stopOnError gives the after-error shell, once per build.
func (b *build) stopOnError(inChroot bool) {
	if b.breaks != nil {
		b.breaks.StopOnError(b.shell(inChroot))
	}
}

func (b *build) shell(inChroot bool) breakshell.Shell {
	return breakshell.Shell{Root: b.target, Chroot: inChroot, Env: b.env}
}

// mountTarget mounts what chrooted hooks expect in the target.
func (b *build) mountTarget() error { return b.chroot.MountAll() }

// unmountTarget undoes mountTarget, first stopping what hooks left
// running in the target, as DIB does before it unmounts the image.
func (b *build) unmountTarget() {
	if b.chroot != nil {
		for _, p := range chroot.KillIn(b.target) {
			fmt.Fprintf(b.out, "Killing chroot process: %s\n", p)
		}
		b.chroot.UnmountAll()
	}
}

// closeImage puts an opened image back: what hooks left running in it
// is stopped and what they left mounted in it unmounted, as a build
// does before its tree leaves for the image, and then the image's own
// filesystems are unmounted and flushed.
func (b *build) closeImage() error {
	for _, p := range chroot.KillIn(b.target) {
		fmt.Fprintf(b.out, "Killing chroot process: %s\n", p)
	}
	own := b.opened.Points()
	left := chroot.UnmountBelow(b.target, func(mp string, flags int) error {
		if slices.Contains(own, mp) {
			return errImageOwn
		}
		return unix.Unmount(mp, flags)
	})
	for _, mp := range left {
		fmt.Fprintf(b.out, "Unmounting %s, which a hook left mounted in the image\n", mp)
	}
	if err := b.opened.Unmount(); err != nil {
		return fmt.Errorf("put the image back: %w", err)
	}
	return nil
}

// errImageOwn keeps the image's own filesystems mounted until closeImage
// unmounts them itself.
var errImageOwn = errors.New("the image's own filesystem")

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
