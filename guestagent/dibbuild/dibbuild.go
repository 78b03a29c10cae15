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
var tools = []string{api.PkgMapTool, api.PackageInstallsTool, api.PackageInstallsSquashTool}

// installTools puts the static agent into the hooks tree as
// dib-run-parts and the other tools, so that they work inside the chroot
// too, where the hooks are at /tmp/in_target.d.
func (b *build) installTools() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	runParts := filepath.Join(b.hooks, api.RunPartsTool)
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

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
