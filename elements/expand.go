package elements

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// OperatingSystem is the virtual element every build needs a provider of.
const OperatingSystem = "operating-system"

// CommandLine returns the elements disk-image-create builds from for the
// elements named on its command line: block-device-mbr (block-device-efi
// on arm64) is added when vm is asked for without any block-device-*
// element, and base is added first unless skipBase (-n) is set.
func CommandLine(args []string, skipBase bool, arch string) []string {
	var vm, blockdev bool
	for _, a := range args {
		vm = vm || a == "vm"
		blockdev = blockdev || strings.HasPrefix(a, "block-device-")
	}
	out := append([]string(nil), args...)
	if vm && !blockdev {
		if arch == "arm64" || arch == "aarch64" {
			out = append(out, "block-device-efi")
		} else {
			out = append(out, "block-device-mbr")
		}
	}
	if !skipBase {
		out = append([]string{"base"}, out...)
	}
	return out
}

// Expand returns the elements asked for and everything they depend on,
// breadth first, as a set sorted by name. Names that some element provides
// (virtual elements, such as operating-system) are satisfied by their
// provider and are not in the result. As in DIB, a dependency cycle is
// simply the set of its members.
//
// It fails, naming the elements involved, when an element is missing,
// when two elements provide the same name, when an element asked for is
// provided by another, or when nothing provides operating-system.
func Expand(lib *Library, want []string) ([]*Element, error) {
	return expand(lib, want, true)
}

// ExpandOnImage is Expand for elements run on an existing image (dibvm
// customize), which is the operating system already: an element may
// still provide operating-system (the image's distribution, for its
// DISTRO_NAME and package tools), but none need.
func ExpandOnImage(lib *Library, want []string) ([]*Element, error) {
	return expand(lib, want, false)
}

func expand(lib *Library, want []string, needOS bool) ([]*Element, error) {
	x := expansion{
		lib:        lib,
		final:      map[string]bool{},
		providedBy: map[string]string{},
		neededBy:   map[string]string{},
	}
	var queue []string
	twice := map[string]bool{}
	for _, name := range want {
		if x.final[name] { // a name given twice is still one element...
			twice[name] = true
			continue
		}
		x.final[name] = true
		queue = append(queue, name)
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if _, ok := x.providedBy[name]; ok {
			continue
		}
		e, err := lib.Get(name)
		if err != nil {
			return nil, x.notFound(name, err)
		}
		// ...unless it provides something: DIB then sees the second
		// providing it again, and fails.
		if twice[name] && len(e.Provides) > 0 {
			return nil, fmt.Errorf("element %s is given twice, and it provides %s: DIB refuses that; give it once", name, strings.Join(e.Provides, ", "))
		}
		for _, p := range e.Provides {
			if other, ok := x.providedBy[p]; ok {
				return nil, fmt.Errorf("%s is provided by both %s and %s: use only one of them", p, other, name)
			}
			x.providedBy[p] = name
		}
		for _, d := range e.Deps {
			if _, ok := x.providedBy[d]; ok || x.final[d] {
				continue
			}
			x.final[d] = true
			x.neededBy[d] = name
			queue = append(queue, d)
		}
	}
	for _, name := range want {
		if by, ok := x.providedBy[name]; ok {
			return nil, fmt.Errorf("element %s was asked for, but %s already provides it: remove %s from the element list", name, by, name)
		}
	}
	if _, ok := x.providedBy[OperatingSystem]; !ok && needOS {
		return nil, fmt.Errorf("no element provides %s: add an operating system element, such as debian-minimal", OperatingSystem)
	}
	var out []*Element
	for name := range x.final {
		if _, ok := x.providedBy[name]; ok {
			continue
		}
		e, err := lib.Get(name)
		if err != nil {
			return nil, x.notFound(name, err)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type expansion struct {
	lib        *Library
	final      map[string]bool
	providedBy map[string]string // virtual name -> its provider
	neededBy   map[string]string // element -> the element whose deps named it
}

func (x *expansion) notFound(name string, err error) error {
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		return err
	}
	var chain []string
	for n := x.neededBy[name]; n != ""; n = x.neededBy[n] {
		chain = append(chain, n)
	}
	nf.NeededBy = strings.Join(chain, " <- ")
	return nf
}

// ImageElementVars are the values of IMAGE_ELEMENT_YAML and of
// get_image_element_array's output that disk-image-create exports for the
// elements names, found at path(name).
func ImageElementVars(names []string, path func(string) string) (yaml, array string) {
	var y, a strings.Builder
	for _, n := range names {
		fmt.Fprintf(&y, "%s: %s\n", n, path(n))
		fmt.Fprintf(&a, "[%s]=%s ", n, path(n))
	}
	return y.String(), a.String()
}
