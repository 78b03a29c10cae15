package rpmstandin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Repo is a signed rpm-md repository on disk.
type Repo struct {
	Dir string
	// RPMs are the packages' files, by package name.
	RPMs map[string]string
	// PublicKey is the armored key the packages and repomd.xml are
	// signed with, in Dir.
	PublicKey string
}

// PublicKeyName is the armored public key's file name in a repository.
const PublicKeyName = "RPM-GPG-KEY-standin"

// Build makes a signed repository in dir, which must not exist yet: the
// packages' rpms (each signed by key) under Packages/, repodata/ from
// createrepo_c with repodata/repomd.xml.asc, and the public key. work
// holds the build roots while they are made. A path two packages ship,
// other than a directory, is an error naming both.
func Build(ctx context.Context, dir, work string, key *Key, pkgs []Package) (_ *Repo, err error) {
	if err := checkTools(); err != nil {
		return nil, err
	}
	plans, err := planPackages(pkgs)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	// A failed build leaves no part of a repository behind.
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	repo := &Repo{Dir: dir, RPMs: map[string]string{}, PublicKey: filepath.Join(dir, PublicKeyName)}
	files, err := buildAll(ctx, plans, work, filepath.Join(dir, "Packages"))
	if err != nil {
		return nil, err
	}
	for i, pl := range plans {
		repo.RPMs[pl.pkg.Name] = files[i]
	}
	if err := key.signRPMs(files); err != nil {
		return nil, err
	}
	if err := key.WritePublic(repo.PublicKey); err != nil {
		return nil, err
	}
	if err := index(ctx, dir, key); err != nil {
		return nil, err
	}
	return repo, nil
}

// buildAll runs rpmbuild for each plan, one per CPU at a time, and
// returns the rpms in the plans' order.
func buildAll(ctx context.Context, plans []*packagePlan, work, out string) ([]string, error) {
	files := make([]string, len(plans))
	errs := make([]error, len(plans))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, pl := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			files[i], errs[i] = pl.build(ctx, work, out)
		}()
	}
	wg.Wait()
	return files, errors.Join(errs...)
}

// Tools are the host commands Build runs, with the Debian package that
// has each.
var Tools = map[string]string{
	"rpmbuild": "rpm", "rpmsign": "rpm", "rpmkeys": "rpm",
	"createrepo_c": "createrepo-c", "gpg": "gpg", "gpgconf": "gpgconf",
}

// checkTools says which of Tools are missing and how to get them.
func checkTools() error {
	var missing, pkgs []string
	for cmd, pkg := range Tools {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, cmd)
			pkgs = append(pkgs, pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stand-in rpm repositories need %s: install them (on Debian: apt-get install --no-install-recommends %s)",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// MissingTools is checkTools for tests deciding whether to skip.
func MissingTools() error { return checkTools() }

// index runs createrepo_c over dir and signs repodata/repomd.xml.
func index(ctx context.Context, dir string, key *Key) error {
	cmd := exec.CommandContext(ctx, "createrepo_c", "--quiet", "--no-database", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("createrepo_c %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	if err := key.detachSign(filepath.Join(dir, "repodata", "repomd.xml")); err != nil {
		return fmt.Errorf("sign %s's repomd.xml: %w", dir, err)
	}
	// Beside it, the key, where zypper looks for one to import
	// (--gpg-auto-import-keys), as openSUSE's repositories publish it.
	return key.WritePublic(filepath.Join(dir, "repodata", "repomd.xml.key"))
}

// packagePlan is one package and the entries its %files lists.
type packagePlan struct {
	pkg     *Package
	entries []entry
}

// planPackages lists each package's entries and checks that no path
// other than a directory is in two packages. A directory in several is
// owned by the first that has it.
func planPackages(pkgs []Package) ([]*packagePlan, error) {
	type owned struct {
		pkg string
		dir bool
	}
	owner := map[string]owned{}
	var plans []*packagePlan
	for i := range pkgs {
		p := &pkgs[i]
		if p.Name == "" || p.Version == "" || p.Release == "" || p.Arch == "" {
			return nil, fmt.Errorf("package %q: name, version, release and arch are all needed", p.Name)
		}
		all, err := entriesOf(p)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.Name, err)
		}
		pl := &packagePlan{pkg: p}
		for _, e := range all {
			if prev, ok := owner[e.path]; ok {
				if prev.dir && e.mode.IsDir() {
					continue
				}
				return nil, fmt.Errorf("%s is in both %s and %s: rpm refuses to install two packages that ship one file", e.path, prev.pkg, p.Name)
			}
			owner[e.path] = owned{p.Name, e.mode.IsDir()}
			pl.entries = append(pl.entries, e)
		}
		plans = append(plans, pl)
	}
	return plans, nil
}

// entriesOf lists p's Tree and Files, with Attrs applied.
func entriesOf(p *Package) ([]entry, error) {
	seen := map[string]int{}
	var out []entry
	add := func(e entry) error {
		if i, ok := seen[e.path]; ok {
			if e.mode.IsDir() && out[i].mode.IsDir() {
				out[i] = e
				return nil
			}
			return fmt.Errorf("%s given twice", e.path)
		}
		seen[e.path] = len(out)
		out = append(out, e)
		return nil
	}
	if p.Tree != "" {
		err := filepath.WalkDir(p.Tree, func(file string, d fs.DirEntry, err error) error {
			if err != nil || file == p.Tree {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(p.Tree, file)
			e := entry{path: "/" + filepath.ToSlash(rel), mode: info.Mode()}
			if a, ok := p.Attrs[e.path]; ok {
				e.mode = e.mode.Type() | a.Mode
				e.user, e.group = a.User, a.Group
			}
			return add(e)
		})
		if err != nil {
			return nil, err
		}
	}
	for _, f := range p.Files {
		if err := add(entry{path: f.Path, mode: f.Mode, user: f.User, group: f.Group, config: f.Config}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
