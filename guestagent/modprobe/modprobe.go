// Package modprobe loads kernel modules in the helper VM by name or by
// alias, from the modules.dep, modules.alias, modules.devname and
// modules.builtin that the appliance ships in depmod's text format.
//
// The agent is the appliance's /sbin/modprobe. The kernel runs it when it
// needs a module it lacks (a filesystem at mount time, "fs-xfs"; a
// character device when its node is opened, "char-major-10-237"), so the
// agent loads at boot only what it needs to reach the host, and the rest
// arrives when a build first uses it. kmod's own modprobe reads only the
// binary indexes depmod makes, which the host cannot write for it.
package modprobe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// Dir is where the running kernel's modules are.
func Dir() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), nil
}

// Index is what the appliance knows about the modules it ships.
type Index struct {
	dir     string
	files   map[string]bool // module names that have a file in modules.dep
	builtin map[string]bool
	aliases []alias
}

type alias struct{ pattern, module string }

// ErrNotFound is returned for a name that is neither a module, a built-in
// one, nor an alias of one.
var ErrNotFound = errors.New("not found")

// Open reads the index of the modules in dir.
func Open(dir string) (*Index, error) {
	ix := &Index{dir: dir, files: map[string]bool{}, builtin: map[string]bool{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(l string) {
		file, _, _ := strings.Cut(l, ":")
		ix.files[Name(file)] = true
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.builtin"), func(l string) { ix.builtin[Name(l)] = true })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.alias"), func(l string) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "alias" {
			ix.aliases = append(ix.aliases, alias{f[1], Name(f[2])})
		}
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return ix, nil
}

// Resolve returns the modules that name stands for: itself when it is a
// module, nothing when the kernel has it built in, or the modules whose
// aliases match it, as kmod resolves them.
func (ix *Index) Resolve(name string) ([]string, error) {
	n := Name(name)
	if ix.files[n] {
		return []string{n}, nil
	}
	if ix.builtin[n] {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range ix.aliases {
		if ok, _ := path.Match(a.pattern, name); ok && !seen[a.module] {
			seen[a.module] = true
			out = append(out, a.module)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("module %s %w in %s", name, ErrNotFound, ix.dir)
	}
	return out, nil
}

// Load loads each named module (or alias) with its dependencies,
// concurrently. Modules already loaded or built in are fine.
func (ix *Index) Load(names ...string) error {
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, name := range names {
		mods, err := ix.Resolve(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range mods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Probe(m, ""); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("load module %s: %w", m, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Node is a device node whose opening makes the kernel ask for a module,
// as modules.devname lists it.
type Node struct {
	Module string
	Name   string // below /dev
	Mode   uint32 // unix.S_IFCHR or unix.S_IFBLK
	Major  uint32
	Minor  uint32
}

// Nodes reads modules.devname.
func (ix *Index) Nodes() ([]Node, error) {
	var out []Node
	var bad error
	err := eachLine(filepath.Join(ix.dir, "modules.devname"), func(l string) {
		n, err := ParseNode(l)
		if err != nil {
			bad = errors.Join(bad, err)
			return
		}
		out = append(out, n)
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return out, errors.Join(err, bad)
}

// ParseNode reads one modules.devname line: "loop loop-control c10:237".
func ParseNode(line string) (Node, error) {
	f := strings.Fields(line)
	if len(f) != 3 || len(f[2]) < 4 || (f[2][0] != 'c' && f[2][0] != 'b') {
		return Node{}, fmt.Errorf("modules.devname: bad line %q", line)
	}
	n := Node{Module: f[0], Name: f[1], Mode: unix.S_IFCHR}
	if f[2][0] == 'b' {
		n.Mode = unix.S_IFBLK
	}
	maj, min, ok := strings.Cut(f[2][1:], ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil || strings.Contains(n.Name, "..") {
		return Node{}, fmt.Errorf("modules.devname: bad line %q", line)
	}
	n.Major, n.Minor = uint32(a), uint32(b)
	return n, nil
}

// MakeNodes creates the device nodes of modules not yet loaded under dev,
// as `kmod static-nodes` does for udev: opening one loads its module.
func (ix *Index) MakeNodes(dev string) error {
	nodes, err := ix.Nodes()
	var errs []error
	for _, n := range nodes {
		p := filepath.Join(dev, n.Name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mknod(p, n.Mode|0o600, int(unix.Mkdev(n.Major, n.Minor))); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("mknod %s: %w", p, err))
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// Name is the name the kernel knows a module by: its file's base name
// without suffixes, with dashes as underscores.
func Name(file string) string {
	base := path.Base(strings.TrimSpace(file))
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func eachLine(name string, fn func(string)) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			fn(l)
		}
	}
	return sc.Err()
}

// Main is the appliance's modprobe: `modprobe [-q] [-v] [-a] [-b] [-s]
// [--] NAME...`, the forms the kernel and DIB's scripts use. Without -a,
// words after the first name are module parameters, which this modprobe
// does not take.
func Main(args []string, stderr io.Writer) int {
	quiet, all := false, false
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			names = append(names, args[i+1:]...)
			i = len(args)
		case a == "-q" || a == "--quiet":
			quiet = true
		case a == "-a" || a == "--all":
			all = true
		case a == "-v" || a == "--verbose" || a == "-b" || a == "--use-blacklist" || a == "-s" || a == "--syslog":
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "modprobe: option %s is not supported by dibvm's helper VM (it loads modules by name or alias only)\n", a)
			return 1
		default:
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "usage: modprobe [-q] [-a] [--] MODULE...")
		return 1
	}
	if !all && len(names) > 1 {
		fmt.Fprintf(stderr, "modprobe: module parameters (%s) are not supported by dibvm's helper VM\n", strings.Join(names[1:], " "))
		return 1
	}
	dir, err := Dir()
	if err == nil {
		var ix *Index
		if ix, err = Open(dir); err == nil {
			err = ix.Load(names...)
		}
	}
	if err != nil {
		if !quiet || !errors.Is(err, ErrNotFound) {
			fmt.Fprintf(stderr, "modprobe: FATAL: %v\n", err)
		}
		return 1
	}
	return 0
}
