package dibbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/checkpoint"
	"github.com/dibvm/dibvm/guestagent/chroot"
	"github.com/dibvm/dibvm/guestagent/emitted"
	"github.com/dibvm/dibvm/guestagent/imageroot"
	"github.com/dibvm/dibvm/guestagent/sysinit"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// prepare formats and mounts the scratch disk and unpacks the elements.
// A resumed build's scratch disk holds the tree already, and the hooks
// and elements of the build it was kept from: they make way for this
// build's own.
func (b *build) prepare() error {
	if err := b.mountScratch(); err != nil {
		return err
	}
	b.hooks, b.elements = filepath.Join(root, api.HooksDir), filepath.Join(root, api.ElementsDir)
	b.built, b.target, b.work = filepath.Join(root, "built"), filepath.Join(root, "mnt"), filepath.Join(root, "work")
	b.chroot = chroot.New(b.target)
	b.points = &checkpoint.Points{Phases: b.spec.Checkpoints, Host: b.host, Disk: root, Tree: b.built}
	// The manifests element names IMAGE_NAME.d as DIB_MANIFEST_SAVE_DIR;
	// the manifests come back by their own way (api.ManifestsEnv).
	b.emitted = &emitted.Dir{Path: emittedDir, Image: b.spec.ImageName, Skip: b.spec.ImageName + ".d",
		Record: filepath.Join(root, "emitted-by.json")}
	if b.spec.Resume != "" {
		fmt.Fprintf(b.out, "Resuming after %s from the kept tree\n", b.spec.Resume)
		for _, d := range []string{b.hooks, b.elements} {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{b.built, b.target, b.work, filepath.Join(root, "cache"), b.manifests(), emittedDir, lockDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := b.mountTree(); err != nil {
		return err
	}
	if err := toolrun.Run(b.run, "tar", "-C", root, "-xf", filepath.Join(b.input, api.ElementsTar)); err != nil {
		return fmt.Errorf("unpack the elements: %w", err)
	}
	if err := os.MkdirAll(b.hooks, 0o755); err != nil {
		return err
	}
	if err := b.installTools(); err != nil {
		return err
	}
	if err := installLib(); err != nil {
		return err
	}
	if err := b.lendDisks(); err != nil {
		return err
	}
	if err := b.lendPaths(); err != nil {
		return err
	}
	b.env = b.environment()
	if b.opened != nil {
		b.tellOpened(b.opened.Layout)
	}
	return nil
}

// tellOpened tells the hooks of an opened image's own root, /boot and
// ESP, as a build's hear of the disk it made: the image's facts, over
// the build's defaults and the caller's settings.
func (b *build) tellOpened(l imageroot.Layout) {
	b.setEnv("DIB_ROOT_FSTYPE", l.Root.FSType)
	b.setEnv("DIB_ROOT_LABEL", l.Root.Label)
	boot := ""
	if l.Boot != nil {
		boot = l.Boot.Label
	}
	b.setEnv("DIB_BOOT_LABEL", boot)
	b.setEnv("DIB_MOUNTPOINTS", strings.Join(l.MountPoints(), "|"))
}

// mountTree puts the tree at TMP_MOUNT_PATH, where hooks always see it,
// as in DIB: the tree built on the scratch disk, where later the image is
// mounted instead, or the existing image the build opens.
func (b *build) mountTree() error {
	if b.spec.Open {
		var err error
		b.opened, err = imageroot.Open(api.ImageSerial, b.target, b.out)
		return err
	}
	if err := unix.Mount(b.built, b.target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the tree: %w", err)
	}
	return nil
}

// mountScratch mounts the scratch disk at root, formatting it first
// unless it holds a kept tree.
func (b *build) mountScratch() error {
	dev, err := sysinit.FindDisk(api.ScratchSerial, 10*time.Second)
	if err != nil {
		return err
	}
	if b.spec.Resume == "" {
		// No journal and lazy init: the scratch disk lives for one build,
		// and a checkpoint of it is taken frozen, so always clean.
		if err := toolrun.Run(b.run, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, root, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount the scratch disk: %w", err)
	}
	return nil
}

// lendDisks finds the disks of the host's files lent to the build, each
// behind a link named as the host's file.
func (b *build) lendDisks() error {
	b.lent = map[string]string{}
	for k, serial := range b.spec.HostDisks {
		dev, err := sysinit.FindDisk(serial, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if b.lent[k], err = linkLentDisk(api.LentDisksDir, k, b.spec.HostDiskNames[k], dev); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// linkLentDisk makes dir/variable/name a link to dev and returns it; with
// no name, or one that is no plain file name, it returns dev itself.
func linkLentDisk(dir, variable, name, dev string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return dev, nil
	}
	d := filepath.Join(dir, variable)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	link := filepath.Join(d, name)
	os.Remove(link)
	return link, os.Symlink(dev, link)
}

// lendPaths unpacks the host's files and directories lent to the build
// into api.LentDir and mounts it read-only: hooks read the copies, as
// DIB's read the host's files, and cannot change them. A resumed build's
// scratch disk may hold the copies of the build it was kept from: they
// make way for this build's own.
func (b *build) lendPaths() error {
	if err := os.RemoveAll(api.LentDir); err != nil {
		return err
	}
	if len(b.spec.HostPaths) == 0 {
		return nil
	}
	for _, name := range b.spec.HostPaths {
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return fmt.Errorf("the build spec lends %q, which is not a file of the input disk", name)
		}
		dir := filepath.Join(api.LentDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := toolrun.Run(b.run, "tar", "-C", dir, "-xf", filepath.Join(b.input, name)); err != nil {
			return fmt.Errorf("unpack the host's files lent to the build: %w", err)
		}
	}
	if err := unix.Mount(api.LentDir, api.LentDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the host's lent files: %w", err)
	}
	if err := unix.Mount("", api.LentDir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("make the host's lent files read-only: %w", err)
	}
	return nil
}

// manifests is where the manifests element leaves what goes to the host.
func (b *build) manifests() string { return filepath.Join(root, "manifests") }

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
	if err := toolrun.Run(b.run, "cp", self, runParts); err != nil {
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
