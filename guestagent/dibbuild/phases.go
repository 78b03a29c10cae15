package dibbuild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/chroot"
	"github.com/dibvm/dibvm/guestagent/hookrunner"
)

// outside runs a phase outside the chroot, if any element has it, with
// its breakpoints (which DIB honours whether or not the phase has hooks).
func (b *build) outside(phase, after string) error {
	name := strings.TrimSuffix(phase, ".d")
	if after == "" {
		if err := b.stop("before-"+name, false); err != nil {
			return err
		}
	}
	dir := filepath.Join(b.hooks, phase)
	if _, err := os.Stat(dir); err == nil {
		fmt.Fprintf(b.out, "Running hooks from %s\n", dir)
		opt := hookrunner.Options{After: after, Watch: b.points.Watcher(phase)}
		if err := hookrunner.RunWith(dir, b.env, b.out, opt); err != nil {
			return err
		}
	}
	// Said now, naming the phase, rather than once the build is done.
	if _, err := b.emitted.Check(phase); err != nil {
		return err
	}
	return b.stop("after-"+name, false)
}

// inside runs a phase chrooted into the target, with the hooks visible
// read-only at /tmp/in_target.d, as DIB's run_d_in_target does, and with
// its breakpoints, where the shell is in the chroot too. A resumed build
// goes on after the hook given.
func (b *build) inside(phase, after string) error {
	if _, err := os.Stat(filepath.Join(b.hooks, phase)); err != nil {
		return nil // DIB has no breakpoints for a chroot phase without hooks
	}
	name := strings.TrimSuffix(phase, ".d")
	if after == "" {
		if err := b.stop("before-"+name, true); err != nil {
			return err
		}
	}
	if err := b.runInside(phase, after); err != nil {
		return err
	}
	return b.stop("after-"+name, true)
}

// runInside runs the hooks of phase in the target with the agent's
// dib-run-parts, which records a failure at api.TargetFailureFile there.
func (b *build) runInside(phase, after string) error {
	undo, err := b.chroot.BindHooks(b.hooks)
	if err != nil {
		return err
	}
	defer undo()
	failure := filepath.Join(b.target, api.TargetFailureFile)
	os.Remove(failure)
	fmt.Fprintf(b.out, "Running hooks from %s in the target\n", filepath.Join(chroot.InTarget, phase))
	watch := b.points.Watcher(phase)
	cmd := exec.Command("chroot", b.chroot.RunPartsArgs(api.RunPartsTool, phase, hookrunner.Flags(after, watch != nil))...)
	cmd.Env = append(b.env, api.FailureFileEnv+"="+api.TargetFailureFile)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	err = hookrunner.RunWatched(cmd, watch)
	if err == nil {
		return nil
	}
	if f, rerr := hookrunner.ReadFailure(failure); rerr == nil {
		os.Remove(failure)
		// While the hooks are still mounted, as DIB's ERR trap has them.
		b.stopOnError(true)
		return f
	}
	return fmt.Errorf("%s in the target: %w", phase, err)
}

// extraPackages installs the -p packages in the target after install.d,
// with the target's install-packages, as disk-image-create does.
func (b *build) extraPackages() error {
	if len(b.spec.Packages) == 0 {
		return nil
	}
	fmt.Fprintf(b.out, "Installing the -p packages: %s\n", strings.Join(b.spec.Packages, " "))
	cmd := exec.Command("chroot", append([]string{b.target, "install-packages"}, b.spec.Packages...)...)
	cmd.Env = b.env
	err := hookrunner.RunCommand(cmd, b.out)
	var f *api.Failure
	if errors.As(err, &f) {
		f.Phase, f.Script = "install.d", api.ExtraPackagesScript
		if f.Status == 127 {
			f.Tail = append(f.Tail, "the image has no install-packages command: -p needs an element that provides it (dpkg)")
		}
	}
	return err
}

// checkRoot fails the build when root.d left no root filesystem.
func (b *build) checkRoot() error {
	entries, err := os.ReadDir(b.target)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return errors.New("root.d made no root filesystem in TARGET_ROOT: the build needs an element that provides operating-system and builds its root in root.d")
	}
	return nil
}
