// Package dibbuild runs a DIB build inside the helper VM: it lays out the
// build directories on the scratch disk, runs the phases in DIB's order,
// outside the target or chrooted into it, and writes the result to the
// output disk. The host starts it as `/init dib-build <input dir>`.
package dibbuild

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/hookrunner"
	"github.com/dibvm/dibvm/guestagent/sysinit"
)

// Layout of the scratch disk, mounted at root.
const root = "/build"

type build struct {
	spec     *api.Spec
	input    string
	hooks    string // TMP_HOOKS_PATH
	elements string // the elements' own files
	built    string // where the tree is built
	target   string // TMP_MOUNT_PATH, TARGET_ROOT: the tree, then the image
	img      *image
	work     string    // TMP_BUILD_DIR
	out      io.Writer // what people read: DIB's lines, the hooks' output
	ctl      io.Writer // control messages to the host (api.Message)
	mounts   []string  // inside the target, to undo in reverse
	env      []string
	breaks   breakpoint.Set
	stdin    *bufio.Reader
	errShell bool              // the after-error shell has been given
	lent     map[string]string // variable → device of the host's file lent to it
}

// Main runs the build described in inputDir and returns the exit status.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: "+api.BuildCommand+" INPUT_DIR")
		return 2
	}
	ctl, err := controlStream()
	if err != nil {
		fmt.Fprintf(os.Stderr, api.BuildCommand+": %v\n", err)
		return 1
	}
	b := &build{input: args[0], out: os.Stderr, ctl: ctl}
	err = b.run()
	var f *api.Failure
	if errors.As(err, &f) {
		b.stopOnError(false)
	}
	b.unmountTarget()
	switch {
	case err == nil:
		return 0
	case errors.As(err, &f):
		b.tell(api.Message{Failure: f})
	default:
		b.tell(api.Message{Error: err.Error()})
	}
	return 1
}

// controlStream takes the build's stdout for control messages and points
// file descriptor 1 at stderr, so that nothing else, not the build's own
// code nor a child that inherits it, can write to the host's control
// stream by printing.
func controlStream() (*os.File, error) {
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

// tell sends the host a control message.
func (b *build) tell(m api.Message) {
	if err := api.WriteMessage(b.ctl, m); err != nil {
		fmt.Fprintf(b.out, api.BuildCommand+": tell the host (%s): %v\n", m.Kind(), err)
	}
}

func (b *build) run() error {
	data, err := os.ReadFile(filepath.Join(b.input, api.SpecFile))
	if err != nil {
		return err
	}
	if b.spec, err = api.ParseSpec(data); err != nil {
		return err
	}
	if err := b.parseBreaks(); err != nil {
		return err
	}
	if err := b.prepare(); err != nil {
		return err
	}
	// The phases a build can be kept after (api.CheckpointPhases), each
	// with those since the one before, given the hook of its own phase
	// to go on after (empty for the first). A resumed build skips them
	// up to where its scratch disk was kept.
	resume, after, _ := strings.Cut(b.spec.Resume, "/")
	skip := resume != ""
	for _, st := range []struct {
		phase string
		run   func(after string) error
	}{
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
	} {
		ran := true
		switch {
		case skip && st.phase == resume && after != "":
			skip = false
			err = st.run(after)
		case skip:
			skip, ran = st.phase != resume, false
		default:
			err = st.run("")
		}
		if err != nil {
			return err
		}
		if ran {
			if err := b.point(st.phase, ""); err != nil {
				return err
			}
		}
		if st.phase == "root.d" {
			if err := b.mountTarget(); err != nil {
				return err
			}
		}
	}
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"post-root.d", func() error { return b.outside("post-root.d", "") }},
		{api.StepImage, b.blockDevice},
		{"pre-finalise.d", func() error { return b.outside("pre-finalise.d", "") }},
		{"finalise.d", func() error { return b.inside("finalise.d", "") }},
	} {
		if err := b.step(step.name, step.run); err != nil {
			return err
		}
	}
	b.unmountTarget()
	if err := b.step("cleanup.d", func() error { return b.outside("cleanup.d", "") }); err != nil {
		return err
	}
	if err := b.finishTree(); err != nil {
		return err
	}
	return b.writeOutputs()
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
	b.tell(api.Message{Step: &api.Step{Name: name}})
	if err := run(); err != nil {
		return err
	}
	b.tell(api.Message{Step: &api.Step{Name: name, Done: true}})
	return nil
}

// blockDevice, for disk image outputs, makes the image and moves the
// tree into it: from here on TARGET_ROOT is the mounted image.
func (b *build) blockDevice() error {
	if b.spec.Layout == nil {
		return nil
	}
	if err := b.outside("block-device.d", ""); err != nil {
		return err
	}
	b.unmountTarget()
	if err := unix.Unmount(b.target, 0); err != nil {
		return fmt.Errorf("unmount the tree: %w", err)
	}
	n, err := treeSize(b.built)
	if err != nil {
		return err
	}
	size := imageSize(n, b.spec)
	disk, err := sysinit.FindDisk(api.OutputSerial, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "Creating a %d MiB %s image\n", size>>20, b.spec.Layout.Label)
	if b.img, err = b.makeImage(disk, size); err != nil {
		return err
	}
	b.exportImage(b.img)
	if err := run("cp", "-a", b.built+"/.", b.target+"/"); err != nil {
		return fmt.Errorf("copy the tree into the image: %w", err)
	}
	if err := b.fstab(b.img); err != nil {
		return err
	}
	return b.mountTarget()
}

// exportImage tells the later phases about the image's devices, as
// disk-image-create does after block-device.d: IMAGE_BLOCK_DEVICE is the
// whole disk, and IMAGE_BLOCK_DEVICES a bash associative array literal of
// every device by name, image0 being the whole disk.
func (b *build) exportImage(img *image) {
	devices := []string{"[image0]=" + img.loop}
	for i, p := range b.spec.Layout.Partitions {
		devices = append(devices, fmt.Sprintf("[%s]=%s", p.Name, img.parts[i]))
		if p.FS != nil && p.FS.MountPoint == "/boot" {
			b.setEnv("DIB_BOOT_LABEL", b.label(p.FS))
		}
	}
	b.setEnv("IMAGE_BLOCK_DEVICE", img.loop)
	b.setEnv("IMAGE_BLOCK_DEVICES", strings.Join(devices, " "))
}

// setEnv sets a variable for the hooks still to run.
func (b *build) setEnv(k, v string) {
	b.env = slices.DeleteFunc(b.env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	b.env = append(b.env, k+"="+v)
}

// prepare formats and mounts the scratch disk and unpacks the elements.
// A resumed build's scratch disk holds the tree already, and the hooks
// and elements of the build it was kept from: they make way for this
// build's own.
func (b *build) prepare() error {
	dev, err := sysinit.FindDisk(api.ScratchSerial, 10*time.Second)
	if err != nil {
		return err
	}
	if b.spec.Resume == "" {
		// No journal and lazy init: the scratch disk lives for one build,
		// and a checkpoint of it is taken frozen, so always clean.
		if err := run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, root, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount the scratch disk: %w", err)
	}
	b.hooks, b.elements = filepath.Join(root, api.HooksDir), filepath.Join(root, api.ElementsDir)
	b.built, b.target, b.work = filepath.Join(root, "built"), filepath.Join(root, "mnt"), filepath.Join(root, "work")
	if b.spec.Resume != "" {
		fmt.Fprintf(b.out, "Resuming after %s from the kept tree\n", b.spec.Resume)
		for _, d := range []string{b.hooks, b.elements} {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{b.built, b.target, b.work, filepath.Join(root, "cache"), b.manifests()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Hooks always see the tree at TMP_MOUNT_PATH, as in DIB, where later
	// the image is mounted instead.
	if err := unix.Mount(b.built, b.target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the tree: %w", err)
	}
	if err := run("tar", "-C", root, "-xf", filepath.Join(b.input, api.ElementsTar)); err != nil {
		return fmt.Errorf("unpack the elements: %w", err)
	}
	if err := os.MkdirAll(b.hooks, 0o755); err != nil {
		return err
	}
	if err := b.installTools(); err != nil {
		return err
	}
	b.lent = map[string]string{}
	for k, serial := range b.spec.HostDisks {
		if b.lent[k], err = sysinit.FindDisk(serial, 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	b.env = b.environment()
	return nil
}

// toolsDir, under the hooks, holds the commands the static agent plays
// for hooks: DIB ships them as scripts in its elements' bin/ directories.
const toolsDir = "dibvm-bin"

// tools are the names the agent answers to (see cmd/dibvm-agent).
var tools = []string{"pkg-map", "package-installs-v2", "package-installs-squash"}

// installTools puts the static agent into the hooks tree as
// dib-run-parts and the other tools, so that they work inside the chroot
// too, where the hooks are at /tmp/in_target.d.
func (b *build) installTools() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	runParts := filepath.Join(b.hooks, "dib-run-parts")
	if err := run("cp", self, runParts); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(b.hooks, toolsDir), 0o755); err != nil {
		return err
	}
	for _, t := range tools {
		if err := os.Link(runParts, filepath.Join(b.hooks, toolsDir, t)); err != nil {
			return err
		}
	}
	return nil
}

// searchPath is PATH for every hook. The tools come last, so that an
// element's own bin/ (installed by install-bin) wins, and both of their
// places are listed: outside the chroot and inside it.
func (b *build) searchPath() string {
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" +
		filepath.Join(b.hooks, toolsDir) + ":" + filepath.Join("/tmp/in_target.d", toolsDir)
}

// environment is what every hook gets, as DIB sets it.
func (b *build) environment() []string {
	s := b.spec
	yaml, array := elements.ImageElementVars(s.Elements, func(n string) string { return filepath.Join(b.elements, n) })
	env := map[string]string{
		"PATH":               b.searchPath(),
		"HOME":               "/root",
		"LANG":               "C.UTF-8",
		"LC_ALL":             "C",
		"TMPDIR":             "/tmp",
		"TARGET_ROOT":        b.target,
		"TMP_MOUNT_PATH":     b.target,
		"TMP_HOOKS_PATH":     b.hooks,
		"TMP_BUILD_DIR":      b.work,
		"TMP_IMAGE_DIR":      b.work,
		"ARCH":               s.Arch,
		"IMAGE_NAME":         s.ImageName,
		"IMAGE_ELEMENT":      strings.Join(s.Elements, " "),
		"IMAGE_ELEMENT_YAML": yaml,
		"ELEMENTS_PATH":      b.elements,
		"DIB_ARGS":           strings.Join(s.Elements, " "),
		"DIB_DEBUG_TRACE":    "0",
		"DIB_ROOT_LABEL":     s.RootLabel,
		"DIB_ROOT_FSTYPE":    s.RootFSType,
		"DIB_BOOT_LABEL":     "",
	}
	if s.Trace {
		env["DIB_DEBUG_TRACE"] = "1"
	}
	// The caller's DIB_* settings replace the build's defaults, as in
	// DIB; the caller's other variables fill in only what the build does
	// not set itself (PATH, HOME, TARGET_ROOT and the like stay its own).
	for k, v := range s.Env {
		if _, own := env[k]; !own || strings.HasPrefix(k, "DIB_") {
			env[k] = v
		}
	}
	for k, name := range s.HostFiles {
		env[k] = filepath.Join(b.input, name)
	}
	for k, dev := range b.lent {
		env[k] = dev
	}
	// Hooks may keep files in DIB_IMAGE_CACHE; the host's directory of
	// that name is not theirs to write, so they get one on the scratch
	// disk. Downloads persist on the host through the egress proxy.
	env["DIB_IMAGE_CACHE"] = filepath.Join(root, "cache")
	env[api.ManifestsEnv] = b.manifests()
	// The helper's way out (see host/egress) applies to hooks too.
	for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", api.DebootstrapEnv} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env)+1)
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	// disk-image-create exports this function; hooks call it.
	out = append(out, "BASH_FUNC_get_image_element_array%%=() {  echo \""+array+"\"\n}")
	return out
}

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
		opt := hookrunner.Options{After: after, Watch: b.watcher(phase)}
		if err := hookrunner.RunWith(dir, b.env, b.out, opt); err != nil {
			return err
		}
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

// targetFailureFile is where, in the target, dib-run-parts records a
// hook's failure for runInside.
const targetFailureFile = "/tmp/dibvm-failure.json"

func (b *build) runInside(phase, after string) error {
	inTarget := filepath.Join(b.target, "tmp", "in_target.d")
	if err := os.MkdirAll(inTarget, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(b.hooks, inTarget, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the hooks into the target: %w", err)
	}
	defer unix.Unmount(inTarget, unix.MNT_DETACH)
	if err := unix.Mount("", inTarget, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("make the hooks read-only: %w", err)
	}
	failure := filepath.Join(b.target, targetFailureFile)
	os.Remove(failure)
	fmt.Fprintf(b.out, "Running hooks from /tmp/in_target.d/%s in the target\n", phase)
	args := []string{b.target, "/tmp/in_target.d/dib-run-parts"}
	if after != "" {
		args = append(args, "--after", after)
	}
	watch := b.watcher(phase)
	if watch != nil {
		args = append(args, "--watch")
	}
	cmd := exec.Command("chroot", append(args, "/tmp/in_target.d/"+phase)...)
	cmd.Env = append(b.env, hookrunner.FailureFileEnv+"="+targetFailureFile)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	err := runWatched(cmd, watch)
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

// runWatched runs a dib-run-parts --watch, answering it for watch, or
// cmd as it is when watch is nil.
func runWatched(cmd *exec.Cmd, watch hookrunner.Watcher) error {
	if watch == nil {
		return cmd.Run()
	}
	events, eventsW, err := os.Pipe()
	if err != nil {
		return err
	}
	answersR, answers, err := os.Pipe()
	if err != nil {
		events.Close()
		eventsW.Close()
		return err
	}
	cmd.ExtraFiles = []*os.File{eventsW, answersR} // its 3 and 4
	err = cmd.Start()
	eventsW.Close()
	answersR.Close()
	if err != nil {
		events.Close()
		answers.Close()
		return err
	}
	serveErr := hookrunner.Serve(events, answers, watch)
	events.Close()
	answers.Close()
	err = cmd.Wait()
	if serveErr != nil {
		return serveErr
	}
	return err
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

// mountTarget mounts what chrooted hooks expect and swaps in a working
// resolv.conf.
func (b *build) mountTarget() error {
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
	}{
		{"proc", "proc", "proc", 0},
		{"/dev", "dev", "", unix.MS_BIND},
		{"/dev/pts", "dev/pts", "", unix.MS_BIND}, // the helper's own, so ttys resolve
		{"sysfs", "sys", "sysfs", unix.MS_RDONLY},
	} {
		dst := filepath.Join(b.target, m.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, dst, m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mount %s in the target: %w", m.dst, err)
		}
		b.mounts = append(b.mounts, dst)
	}
	return b.swapResolvConf()
}

func (b *build) unmountTarget() {
	for i := len(b.mounts) - 1; i >= 0; i-- {
		unix.Unmount(b.mounts[i], unix.MNT_DETACH)
	}
	b.mounts = nil
}

// While the target is mounted, its own resolv.conf (a file or a link)
// waits at resolvSaved, or resolvAbsent says it had none.
const (
	resolvSaved  = "etc/.resolv.conf.dibvm-orig"
	resolvAbsent = "etc/.resolv.conf.dibvm-absent"
)

// swapResolvConf gives the target the helper's resolver during the build,
// keeping whatever the target had to put back. A tree kept after a phase
// has been swapped already: only the helper's resolver is written anew.
func (b *build) swapResolvConf() error {
	conf := filepath.Join(b.target, "etc", "resolv.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	if !exists(filepath.Join(b.target, resolvSaved)) && !exists(filepath.Join(b.target, resolvAbsent)) {
		if exists(conf) {
			if err := os.Rename(conf, filepath.Join(b.target, resolvSaved)); err != nil {
				return err
			}
		} else if err := os.WriteFile(filepath.Join(b.target, resolvAbsent), nil, 0o600); err != nil {
			return err
		}
	}
	os.Remove(conf)
	data, _ := os.ReadFile("/etc/resolv.conf")
	return os.WriteFile(conf, data, 0o644)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// finishTree restores resolv.conf and empties /tmp, as DIB does before
// the tree becomes an image.
func (b *build) finishTree() error {
	conf := filepath.Join(b.target, "etc", "resolv.conf")
	os.Remove(conf)
	os.Remove(filepath.Join(b.target, resolvAbsent))
	if exists(filepath.Join(b.target, resolvSaved)) {
		if err := os.Rename(filepath.Join(b.target, resolvSaved), conf); err != nil {
			return err
		}
	}
	tmp := filepath.Join(b.target, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	return nil
}

// writeOutputs writes the asked-for outputs to the output disk and
// reports where they are: the raw image first, then any tar of the tree,
// then any squashfs.
func (b *build) writeOutputs() error {
	b.tell(api.Message{Step: &api.Step{Name: api.StepOutputs}})
	var res api.Result
	if b.img != nil {
		res.ImageSize, res.TarOffset = b.img.size, b.img.size
	}
	end := res.TarOffset
	if api.TreeArchive(b.spec.Types) {
		n, err := b.writeTar(res.TarOffset)
		if err != nil {
			return err
		}
		res.TarSize = n
		end += n
	}
	if slices.Contains(b.spec.Types, api.TypeSquashfs) {
		n, err := b.writeSquashfs(end)
		if err != nil {
			return err
		}
		res.SquashfsOffset, res.SquashfsSize = end, n
		end += n
	}
	if entries, _ := os.ReadDir(b.manifests()); len(entries) > 0 {
		n, err := b.writeManifests(end)
		if err != nil {
			return err
		}
		res.ManifestsOffset, res.ManifestsSize = end, n
	}
	if b.img != nil {
		if err := b.img.release(); err != nil {
			return err
		}
	}
	b.tell(api.Message{Step: &api.Step{Name: api.StepOutputs, Done: true}})
	b.tell(api.Message{Result: &res})
	return nil
}

// manifests is where the manifests element leaves what goes to the host.
func (b *build) manifests() string { return filepath.Join(root, "manifests") }

// writeManifests writes a tar of the manifests onto the output disk at
// offset.
func (b *build) writeManifests(offset int64) (int64, error) {
	return b.writeTarOf(b.manifests(), offset)
}

// writeSquashfs makes a squashfs of the tree on the scratch disk and
// copies it onto the output disk at offset.
func (b *build) writeSquashfs(offset int64) (int64, error) {
	fmt.Fprintln(b.out, "Making the squashfs image")
	sq := filepath.Join(b.work, "image.squash")
	if err := run("mksquashfs", b.target, sq, "-comp", "xz", "-noappend", "-quiet", "-no-progress"); err != nil {
		return 0, err
	}
	defer os.Remove(sq)
	src, err := os.Open(sq)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	return b.copyToOutput(src, offset)
}

// copyToOutput writes r onto the output disk at offset.
func (b *build) copyToOutput(r io.Reader, offset int64) (int64, error) {
	dev, err := sysinit.FindDisk(api.OutputSerial, 10*time.Second)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return n, fmt.Errorf("write to the output disk: %w", err)
	}
	return n, f.Sync()
}

// writeTar streams the tree as a tar archive onto the output disk at
// offset.
func (b *build) writeTar(offset int64) (int64, error) {
	return b.writeTarOf(b.target, offset, "--xattrs", "--acls")
}

// writeTarOf streams a tar of dir onto the output disk at offset.
func (b *build) writeTarOf(dir string, offset int64, opts ...string) (int64, error) {
	args := append([]string{"--numeric-owner"}, opts...)
	cmd := exec.Command("tar", append(args, "-C", dir, "-cf", "-", ".")...)
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, copyErr := b.copyToOutput(pipe, offset)
	if copyErr != nil {
		cmd.Process.Kill() // it would block on the pipe
	}
	if err := cmd.Wait(); err != nil && copyErr == nil {
		return 0, fmt.Errorf("tar %s: %w", dir, err)
	}
	return n, copyErr
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
