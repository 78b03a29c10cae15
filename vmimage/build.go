package vmimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// Manifest records what went into a base image.
type Manifest struct {
	Spec          Spec          `json:"spec"`
	Suite         string        `json:"suite"` // the codename the mirror served
	KernelVersion string        `json:"kernel_version"`
	Kernel        PackageRef    `json:"kernel"`
	Packages      []PackageRef  `json:"packages"`
	Built         time.Time     `json:"built"`
	BuildTime     time.Duration `json:"build_time"`
}

// PackageRef names one package exactly.
type PackageRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Digest identifies the exact packages in m.
func (m *Manifest) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%s %s\n", formatVersion, m.Kernel.Name, m.Kernel.SHA256)
	for _, p := range m.Packages {
		fmt.Fprintf(h, "%s %s\n", p.Name, p.SHA256)
	}
	fmt.Fprintf(h, "%q %q\n", m.Spec.Modules, m.Spec.BootModules)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// plan is a resolved appliance: which packages, not yet downloaded.
type plan struct {
	manifest *Manifest
	kernel   *debrepo.Package
	userland []*debrepo.Package
}

// source is a mirror's suite, its signed index read once for a base and
// the layers that go onto it.
type source struct {
	repo *debrepo.Repo
	rel  *debrepo.Release
	idx  *debrepo.Index
}

func openSource(ctx context.Context, repo *debrepo.Repo) (*source, error) {
	rel, err := repo.Release(ctx)
	if err != nil {
		return nil, err
	}
	idx, err := repo.Index(ctx, rel)
	if err != nil {
		return nil, err
	}
	return &source{repo: repo, rel: rel, idx: idx}, nil
}

func resolve(src *source, spec Spec) (*plan, error) {
	kpkg, err := kernelPackage(src.idx, spec.Arch)
	if err != nil {
		return nil, err
	}
	roots := append([]string(nil), spec.Packages...)
	for _, p := range src.idx.Essential() {
		roots = append(roots, p.Name)
	}
	sort.Strings(roots)
	pkgs, err := src.idx.Resolve(roots, spec.Without)
	if err != nil {
		return nil, fmt.Errorf("resolve the appliance's packages: %w", err)
	}
	m := &Manifest{Spec: spec, Suite: src.rel.Codename, Kernel: ref(kpkg)}
	for _, p := range pkgs {
		m.Packages = append(m.Packages, ref(p))
	}
	return &plan{manifest: m, kernel: kpkg, userland: pkgs}, nil
}

func ref(p *debrepo.Package) PackageRef {
	return PackageRef{Name: p.Name, Version: p.Version.String(), SHA256: p.SHA256}
}

// download fetches every package of the plan.
func (pl *plan) download(ctx context.Context, repo *debrepo.Repo) (map[string]string, error) {
	return fetchAll(ctx, repo, append([]*debrepo.Package{pl.kernel}, pl.userland...))
}

// fetchAll downloads pkgs, a few at a time, and returns the path of
// each verified file by package name.
func fetchAll(ctx context.Context, repo *debrepo.Repo, pkgs []*debrepo.Package) (map[string]string, error) {
	files := make(map[string]string, len(pkgs))
	var mu sync.Mutex
	var firstErr error
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
			if err != nil && firstErr == nil {
				firstErr = err
			}
			files[p.Name] = f
		}()
	}
	wg.Wait()
	return files, firstErr
}

// skipped are paths of no use in the appliance: documentation and
// translations make up a fifth of the userland.
var skipped = []string{
	"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
	"usr/share/lintian/", "usr/share/bug/", "usr/share/zoneinfo/",
}

func keep(name string) bool {
	name = strings.TrimPrefix(path.Clean("/"+name), "/") + "/"
	for _, s := range skipped {
		if strings.HasPrefix(name, s) {
			return false
		}
	}
	return true
}

// assemble unpacks the plan's packages into a tree and returns it with
// the kernel image.
func (pl *plan) assemble(files map[string]string) (*initramfs.Tree, *kernel, error) {
	t := initramfs.NewTree()
	if err := unpackInto(t, pl.userland, files); err != nil {
		return nil, nil, err
	}
	k, err := readKernel(files[pl.kernel.Name])
	if err != nil {
		return nil, nil, err
	}
	if err := k.addModules(t, pl.manifest.Spec.Modules); err != nil {
		return nil, nil, err
	}
	if err := configure(t, pl.manifest.Spec); err != nil {
		return nil, nil, err
	}
	pl.manifest.KernelVersion = k.Version
	return t, k, nil
}

// unpackInto unpacks the data of pkgs, from files by package name, into
// t, less what keep leaves out.
func unpackInto(t *initramfs.Tree, pkgs []*debrepo.Package, files map[string]string) error {
	for _, p := range pkgs {
		err := debrepo.WalkData(files[p.Name], func(hdr *tar.Header, r io.Reader) error {
			if !keep(hdr.Name) {
				return nil
			}
			return t.AddTarEntry(hdr, r)
		})
		if err != nil {
			return fmt.Errorf("unpack %s: %w", p.Name, err)
		}
	}
	return nil
}

// configure does by hand the few things that maintainer scripts would have
// done and that the appliance relies on.
func configure(t *initramfs.Tree, spec Spec) error {
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "mnt", "root", "var/tmp", "etc/dibvm"} {
		t.MkdirAll(d, 0o755)
	}
	if n, ok := t.Get("tmp"); ok {
		n.Mode = fs.ModeDir | fs.ModeSticky | 0o777
	}
	for master, target := range map[string]string{"passwd": "etc/passwd", "group": "etc/group"} {
		n, ok := t.Get("usr/share/base-passwd/" + master + ".master")
		if !ok {
			return fmt.Errorf("base-passwd ships no %s.master", master)
		}
		t.WriteFile(target, n.Data, 0o644)
	}
	t.WriteFile("etc/shadow", []byte("root:*:20000:0:99999:7:::\n"), 0o640)
	t.WriteFile("etc/hostname", []byte("dibvm\n"), 0o644)
	t.WriteFile("etc/hosts", []byte("127.0.0.1 localhost dibvm\n::1 localhost\n"), 0o644)
	t.WriteFile(strings.TrimPrefix(api.ModulesFile, "/"), []byte(strings.Join(spec.BootModules, "\n")+"\n"), 0o644)
	// The agent is modprobe: the kernel runs /sbin/modprobe for a module
	// it lacks, and kmod's reads only indexes the host cannot make.
	t.Symlink(api.AgentPath, "usr/sbin/modprobe")
	t.Symlink("../proc/self/mounts", "etc/mtab")
	// udev's hardware database sources: nothing compiles or reads them
	// here. xfs_scrub needs what spec.Without leaves out.
	for _, p := range []string{"usr/lib/udev/hwdb.d", "usr/sbin/xfs_scrub", "usr/sbin/xfs_scrub_all"} {
		t.Remove(p)
	}
	alternatives(t)
	caBundle(t)
	// Elements call sudo; in the helper everything already runs as root.
	t.WriteFile("usr/local/bin/sudo", []byte(sudoShim), 0o755)
	return nil
}

// sudoShim runs its command as it is, dropping sudo's options, so that
// DIB elements' "sudo -E cmd" and "sudo sh -c ..." work in the helper,
// where every command already runs as root.
const sudoShim = `#!/bin/sh
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -u|-g|-C|-D|-h|-p|-r|-t|-T|-U) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || exit 0
exec "$@"
`

// alternatives makes the links update-alternatives would make in the
// packages' postinst, for the commands DIB's scripts call by their
// generic names. The first candidate present wins.
var alternativeLinks = []struct {
	link       string
	candidates []string
}{
	{"usr/bin/awk", []string{"usr/bin/gawk", "usr/bin/mawk"}},
	{"usr/bin/nawk", []string{"usr/bin/gawk", "usr/bin/mawk"}},
	{"usr/bin/which", []string{"usr/bin/which.debianutils"}},
}

func alternatives(t *initramfs.Tree) {
	for _, a := range alternativeLinks {
		if _, ok := t.Get(a.link); ok {
			continue
		}
		for _, c := range a.candidates {
			if _, ok := t.Get(c); ok {
				t.Symlink("/"+c, a.link)
				break
			}
		}
	}
}

// caBundle writes /etc/ssl/certs/ca-certificates.crt as
// update-ca-certificates would, from the certificates ca-certificates ships.
func caBundle(t *initramfs.Tree) {
	var bundle bytes.Buffer
	t.Walk("usr/share/ca-certificates", func(name string, n *initramfs.Node) {
		if n.Mode.IsRegular() && strings.HasSuffix(name, ".crt") {
			bundle.Write(n.Data)
			if !bytes.HasSuffix(n.Data, []byte("\n")) {
				bundle.WriteByte('\n')
			}
		}
	})
	if bundle.Len() > 0 {
		t.WriteFile("etc/ssl/certs/ca-certificates.crt", bundle.Bytes(), 0o644)
	}
}
