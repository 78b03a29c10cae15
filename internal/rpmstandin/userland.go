package rpmstandin

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// UserlandSpec says which Debian packages make a stand-in userland, and
// where they come from.
type UserlandSpec struct {
	Mirror string // default debrepo.DefaultMirror
	Suite  string // default "stable"
	Arch   string // a Debian architecture, default "amd64"
	// Packages are the Debian packages wanted; with their dependencies
	// and Debian's Essential set (what every package may assume without
	// naming it) they make the userland.
	Packages []string
	// Without are dependencies (path.Match patterns) left out, as
	// debrepo.Index.Resolve takes them.
	Without []string
	// CacheDir keeps the verified downloads between runs.
	CacheDir string
	Client   *http.Client
}

// Userland is Debian's packages unpacked into a staging tree, with by
// hand the essential work their maintainer scripts would have done.
type Userland struct {
	// Tree is the staged tree, in merged-/usr form: nothing under /bin,
	// /sbin or /lib*, whose links the filesystem package has.
	Tree string
	// Attrs are the modes and owners the tree cannot hold for itself.
	Attrs map[string]Attr
	// Debs are the packages unpacked, as name=version.
	Debs []string
	// Size is the bytes of its regular files.
	Size int64
}

// StageUserland resolves spec's packages on a Debian mirror (its signed
// Release checked by debrepo), downloads them into spec.CacheDir, and
// unpacks them into dir, which must be empty or not exist, less
// documentation, manual pages and translations. No maintainer script
// runs.
func StageUserland(ctx context.Context, spec UserlandSpec, dir string) (*Userland, error) {
	repo, err := spec.repo()
	if err != nil {
		return nil, err
	}
	rel, err := repo.Release(ctx)
	if err != nil {
		return nil, fmt.Errorf("the stand-in's Debian userland: %w", err)
	}
	idx, err := repo.Index(ctx, rel)
	if err != nil {
		return nil, fmt.Errorf("the stand-in's Debian userland: %w", err)
	}
	roots := append([]string(nil), spec.Packages...)
	for _, p := range idx.Essential() {
		roots = append(roots, p.Name)
	}
	sort.Strings(roots)
	pkgs, err := idx.Resolve(roots, spec.Without)
	if err != nil {
		return nil, fmt.Errorf("resolve the stand-in's Debian userland: %w", err)
	}
	files, err := fetchDebs(ctx, repo, pkgs)
	if err != nil {
		return nil, err
	}
	u := &Userland{Tree: dir, Attrs: map[string]Attr{}}
	st := &stager{root: dir, attrs: u.Attrs}
	for _, p := range pkgs {
		if err := st.unpack(files[p.Name]); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", p.Name, err)
		}
		u.Debs = append(u.Debs, p.Name+"="+p.Version.String())
	}
	if err := configure(st); err != nil {
		return nil, err
	}
	u.Size = st.size
	return u, nil
}

func (s UserlandSpec) repo() (*debrepo.Repo, error) {
	keyring, err := debrepo.DebianKeyring()
	if err != nil {
		return nil, err
	}
	r := &debrepo.Repo{Mirror: s.Mirror, Suite: s.Suite, Component: "main", Arch: s.Arch,
		Keyring: keyring, Client: s.Client, CacheDir: s.CacheDir}
	if r.Mirror == "" {
		r.Mirror = debrepo.DefaultMirror
	}
	if r.Suite == "" {
		r.Suite = "stable"
	}
	if r.Arch == "" {
		r.Arch = "amd64"
	}
	if r.Client == nil {
		r.Client = http.DefaultClient
	}
	return r, nil
}

// fetchDebs downloads pkgs, a few at a time, and returns each verified
// file's path by package name.
func fetchDebs(ctx context.Context, repo *debrepo.Repo, pkgs []*debrepo.Package) (map[string]string, error) {
	files := make(map[string]string, len(pkgs))
	var mu sync.Mutex
	var errs []string
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, p := range pkgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := repo.Fetch(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
			}
			files[p.Name] = f
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("download the stand-in's Debian userland: %s", strings.Join(errs, "; "))
	}
	return files, nil
}

// RPMArch is the rpm name of a Debian architecture.
func RPMArch(debArch string) string {
	switch debArch {
	case "amd64", "":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return debArch
}

// linkedDirs are the directories the filesystem package has as links,
// and where they lead: the links merged-/usr makes into /usr, and
// /var/run and /var/lock into /run, which Debian's base-files ships as
// directories for its postinst to replace.
var linkedDirs = map[string]string{
	"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib32": "usr/lib32",
	"lib64": "usr/lib64", "libx32": "usr/libx32",
	"var/run": "run", "var/lock": "run/lock",
}

// canonical is name (a tar entry's) as a clean path relative to the
// root, with linkedDirs followed: bin/x is usr/bin/x. ok is false for
// the root and for the linked directories themselves.
func canonical(name string) (string, bool) {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		return "", false
	}
	for from, to := range linkedDirs {
		if p == from {
			return "", false
		}
		if rest, ok := strings.CutPrefix(p, from+"/"); ok {
			return to + "/" + rest, true
		}
	}
	return p, true
}

// dropped are paths of no use in a test image: documentation and
// translations, a fifth of a userland.
var dropped = []string{
	"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
	"usr/share/lintian/", "usr/share/bug/", "usr/share/doc-base/",
}

func keepPath(p string) bool {
	p += "/"
	for _, d := range dropped {
		if strings.HasPrefix(p, d) {
			return false
		}
	}
	return true
}
