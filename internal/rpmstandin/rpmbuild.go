package rpmstandin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// build stages pl's files in a build root under work, runs rpmbuild on
// them and moves the rpm into out. It returns the rpm's path.
func (pl *packagePlan) build(ctx context.Context, work, out string) (string, error) {
	p := pl.pkg
	top, err := os.MkdirTemp(work, p.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(top)
	root := filepath.Join(top, "root")
	if err := pl.stage(root); err != nil {
		return "", fmt.Errorf("package %s: stage its files: %w", p.Name, err)
	}
	spec, err := specFile(p, pl.entries)
	if err != nil {
		return "", err
	}
	specPath := filepath.Join(top, p.Name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "rpmbuild", "-bb", "--quiet", "--noclean",
		"--define", "_topdir "+filepath.Join(top, "top"),
		"--buildroot", root,
		// No /usr/lib/.build-id links: two packages with one binary
		// would conflict over them, and nothing here debugs.
		"--define", "_build_id_links none",
		// zstd, which rpm 4.14 and later read, is quick at this level.
		"--define", "_binary_payload w3.zstdio",
		"--define", "_source_payload w3.zstdio",
		specPath)
	if outb, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("rpmbuild %s: %w: %s", p.NEVRA(), err, lastLines(string(outb), 20))
	}
	built := filepath.Join(top, "top", "RPMS", p.Arch, p.NEVRA()+".rpm")
	if err := os.MkdirAll(out, 0o755); err != nil && !os.IsExist(err) {
		return "", err
	}
	dest := filepath.Join(out, p.NEVRA()+".rpm")
	if err := moveFile(built, dest); err != nil {
		return "", fmt.Errorf("rpmbuild %s made no %s: %w", p.NEVRA(), filepath.Base(built), err)
	}
	return dest, nil
}

// stage makes the build root: Tree's entries hard-linked (copied
// across file systems), then the generated Files. Directories are kept
// writable by their owner so that the build root can be removed; their
// modes in the package come from %attr.
func (pl *packagePlan) stage(root string) error {
	p := pl.pkg
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if p.Tree != "" {
		err := filepath.WalkDir(p.Tree, func(file string, d fs.DirEntry, err error) error {
			if err != nil || file == p.Tree {
				return err
			}
			rel, _ := filepath.Rel(p.Tree, file)
			return linkEntry(file, filepath.Join(root, rel), d)
		})
		if err != nil {
			return err
		}
	}
	for _, f := range p.Files {
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		var err error
		switch {
		case f.Mode.IsDir():
			err = os.MkdirAll(dst, 0o755)
		case f.Mode&fs.ModeSymlink != 0:
			err = os.Symlink(f.Target, dst)
		default:
			err = os.WriteFile(dst, f.Data, 0o644)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return nil
}

func linkEntry(src, dst string, d fs.DirEntry) error {
	switch {
	case d.IsDir():
		return os.MkdirAll(dst, 0o755)
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case d.Type().IsRegular():
		err := os.Link(src, dst)
		if errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) {
			return copyFile(src, dst)
		}
		return err
	default:
		return fmt.Errorf("%s: a %s, not a file, directory or symbolic link", src, d.Type())
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
