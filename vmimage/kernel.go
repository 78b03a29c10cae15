package vmimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// kernelPackage finds the versioned linux-image package that Debian's
// linux-image-<arch> metapackage points at.
func kernelPackage(idx *debrepo.Index, arch string) (*debrepo.Package, error) {
	meta := idx.Newest("linux-image-" + arch)
	if meta == nil {
		return nil, fmt.Errorf("the mirror has no linux-image-%s", arch)
	}
	for _, rel := range meta.Depends.Relations {
		for _, poss := range rel.Possibilities {
			if strings.HasPrefix(poss.Name, "linux-image-") {
				if p := idx.Newest(poss.Name); p != nil {
					return p, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("linux-image-%s %s depends on no kernel image in the index", arch, meta.Version)
}

// kernel is what dibvm takes from a linux-image .deb.
type kernel struct {
	Version string
	Image   []byte
	builtin []byte
	files   map[string][]byte // module path below lib/modules/<version>/ -> its bytes, maybe compressed
}

func readKernel(debPath string) (*kernel, error) {
	k := &kernel{files: map[string][]byte{}}
	err := debrepo.WalkData(debPath, func(hdr *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		name = strings.TrimPrefix(name, "usr/") // lib/modules before and after the /usr merge
		switch {
		case hdr.Typeflag != tar.TypeReg:
			return nil
		case strings.HasPrefix(name, "boot/vmlinu"):
			k.Version = strings.TrimPrefix(strings.TrimPrefix(path.Base(name), "vmlinuz-"), "vmlinux-")
			var err error
			k.Image, err = io.ReadAll(r)
			return err
		case strings.HasPrefix(name, "lib/modules/"):
			parts := strings.SplitN(name, "/", 4)
			if len(parts) < 4 {
				return nil
			}
			rel := parts[3]
			if rel != "modules.builtin" && !strings.Contains(rel, ".ko") {
				return nil
			}
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if rel == "modules.builtin" {
				k.builtin = data
			} else {
				k.files[rel] = data
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if k.Image == nil {
		return nil, fmt.Errorf("%s holds no /boot/vmlinuz", path.Base(debPath))
	}
	return k, nil
}

// moduleName is the name modprobe knows a module file by.
func moduleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// module is one module chosen for the appliance.
type module struct {
	file string   // path below lib/modules/<version>/, without compression suffix
	data []byte   // uncompressed
	deps []string // files of the modules it needs, for modules.dep
}

// closure returns names and every module they need, through the depends=
// and softdep pre: fields of each module's .modinfo (the kernel package
// ships no modules.dep: depmod makes it at install time). Modules built
// into the kernel need no file; a name the kernel does not know at all is
// an error.
func (k *kernel) closure(names []string) ([]*module, error) {
	byName := map[string]string{}
	for file := range k.files {
		byName[moduleName(file)] = file
	}
	builtin := map[string]bool{}
	for _, line := range strings.Split(string(k.builtin), "\n") {
		if line != "" {
			builtin[moduleName(line)] = true
		}
	}
	chosen := map[string]*module{}
	var visit func(name string, required bool) (string, error)
	visit = func(name string, required bool) (string, error) {
		name = strings.ReplaceAll(name, "-", "_")
		file, ok := byName[name]
		if !ok {
			if builtin[name] || !required {
				return "", nil
			}
			return "", fmt.Errorf("kernel %s has no module %s", k.Version, name)
		}
		if m, ok := chosen[file]; ok {
			return m.file, nil
		}
		data, err := decompressModule(file, k.files[file])
		if err != nil {
			return "", fmt.Errorf("module %s: %w", file, err)
		}
		m := &module{file: plainName(file), data: data}
		chosen[file] = m
		needs, err := moduleNeeds(data)
		if err != nil {
			return "", fmt.Errorf("module %s: %w", file, err)
		}
		for _, n := range needs {
			dep, err := visit(n.name, n.required)
			if err != nil {
				return "", err
			}
			if dep != "" {
				m.deps = append(m.deps, dep)
			}
		}
		return m.file, nil
	}
	for _, n := range names {
		if _, err := visit(n, true); err != nil {
			return nil, err
		}
	}
	out := make([]*module, 0, len(chosen))
	for _, m := range chosen {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].file < out[j].file })
	return out, nil
}

type need struct {
	name     string
	required bool
}

// modinfo returns the key=value fields of a module's .modinfo section, in
// order.
func modinfo(ko []byte) ([][2]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, field := range strings.Split(string(info), "\x00") {
		if key, value, ok := strings.Cut(field, "="); ok {
			out = append(out, [2]string{key, value})
		}
	}
	return out, nil
}

// moduleNeeds reads a module's hard dependencies (depends=) and the modules
// it asks to have loaded first (softdep=pre:), which are optional.
func moduleNeeds(ko []byte) ([]need, error) {
	fields, err := modinfo(ko)
	if err != nil {
		return nil, err
	}
	var out []need
	for _, kv := range fields {
		key, value := kv[0], kv[1]
		switch key {
		case "depends":
			for _, d := range strings.Split(value, ",") {
				if d != "" {
					out = append(out, need{d, true})
				}
			}
		case "softdep":
			pre, _, _ := strings.Cut(strings.TrimPrefix(value, "pre:"), "post:")
			if strings.HasPrefix(value, "pre:") {
				for _, d := range strings.Fields(pre) {
					out = append(out, need{d, false})
				}
			}
		}
	}
	return out, nil
}

// aliasLines returns a module's lines of modules.alias ("alias fs-xfs
// xfs") and of modules.devname ("loop loop-control c10:237"), as depmod
// writes them: a devname: alias pairs with the module's char-major- or
// block-major- alias that has no wildcard.
func aliasLines(ko []byte, name string) (aliases, devnames []string, err error) {
	fields, err := modinfo(ko)
	if err != nil {
		return nil, nil, err
	}
	var devname, dev string
	for _, kv := range fields {
		if kv[0] != "alias" {
			continue
		}
		a := kv[1]
		aliases = append(aliases, fmt.Sprintf("alias %s %s", a, name))
		var maj, min int
		switch {
		case strings.HasPrefix(a, "devname:"):
			devname = strings.TrimPrefix(a, "devname:")
		case !strings.Contains(a, "*") && strings.HasPrefix(a, "char-major-"):
			if _, err := fmt.Sscanf(a, "char-major-%d-%d", &maj, &min); err == nil {
				dev = fmt.Sprintf("c%d:%d", maj, min)
			}
		case !strings.Contains(a, "*") && strings.HasPrefix(a, "block-major-"):
			if _, err := fmt.Sscanf(a, "block-major-%d-%d", &maj, &min); err == nil {
				dev = fmt.Sprintf("b%d:%d", maj, min)
			}
		}
	}
	if devname != "" && dev != "" {
		devnames = append(devnames, fmt.Sprintf("%s %s %s", name, devname, dev))
	}
	return aliases, devnames, nil
}

// addModules puts the closure of names into the tree, decompressed (the
// host does that natively, far faster than the emulated guest could), with
// a modules.dep, modules.alias and modules.devname that list just them:
// the agent, as the appliance's modprobe, reads them when the kernel asks
// for a module.
func (k *kernel) addModules(t *initramfs.Tree, names []string) error {
	mods, err := k.closure(names)
	if err != nil {
		return err
	}
	dir := "usr/lib/modules/" + k.Version
	var dep, aliases, devnames bytes.Buffer
	for _, m := range mods {
		a, d, err := aliasLines(m.data, moduleName(m.file))
		if err != nil {
			return fmt.Errorf("module %s: %w", m.file, err)
		}
		for _, l := range a {
			aliases.WriteString(l + "\n")
		}
		for _, l := range d {
			devnames.WriteString(l + "\n")
		}
		t.WriteFile(dir+"/"+m.file, m.data, 0o644)
		// depmod's format: "file:" alone, or "file: dep dep"; kmodule
		// reads a trailing space as a dependency with an empty name.
		fmt.Fprintf(&dep, "%s:", m.file)
		if len(m.deps) > 0 {
			fmt.Fprintf(&dep, " %s", strings.Join(m.deps, " "))
		}
		dep.WriteString("\n")
	}
	t.WriteFile(dir+"/modules.dep", dep.Bytes(), 0o644)
	t.WriteFile(dir+"/modules.alias", aliases.Bytes(), 0o644)
	t.WriteFile(dir+"/modules.devname", devnames.Bytes(), 0o644)
	t.WriteFile(dir+"/modules.builtin", k.builtin, 0o644)
	return nil
}

func plainName(f string) string {
	if i := strings.Index(f, ".ko"); i >= 0 {
		return f[:i+len(".ko")]
	}
	return f
}

func decompressModule(name string, data []byte) ([]byte, error) {
	switch {
	case strings.HasSuffix(name, ".ko"):
		return data, nil
	case strings.HasSuffix(name, ".ko.xz"):
		r, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case strings.HasSuffix(name, ".ko.zst"):
		return decompressZstd(data)
	}
	return nil, fmt.Errorf("unknown module compression")
}
