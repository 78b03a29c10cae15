package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/envvar"
	"github.com/dibvm/dibvm/host/iso"
)

func checkTypes(types []string) error {
	if len(types) == 0 {
		return errors.New("-t: no output type given")
	}
	for _, t := range types {
		ok := false
		for _, s := range Supported {
			ok = ok || t == s
		}
		if !ok {
			return fmt.Errorf("-t %s: this dibvm cannot write that type yet; it writes: %s", t, strings.Join(Supported, ", "))
		}
	}
	return nil
}

// prepareElements expands, merges and checks the elements on the host,
// where errors are cheap, before any VM boots.
func prepareElements(o Options) ([]*elements.Element, *elements.Hooks, error) {
	lib, err := elements.NewLibrary(o.ElementsPath, elements.Builtin())
	if err != nil {
		return nil, nil, err
	}
	expand := elements.Expand
	if o.Open != "" {
		expand = elements.ExpandOnImage
	}
	els, err := expand(lib, elements.CommandLine(o.Elements, o.SkipBase, o.Arch))
	for _, w := range lib.Warnings() {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s\n", w)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := checkSize(els); err != nil {
		return nil, nil, err
	}
	hooks, warnings, err := elements.BuildHooks(els, o.Environ)
	if err != nil {
		return nil, nil, err
	}
	if err := checkInstallType(hooks, o.InstallType); err != nil {
		return nil, nil, err
	}
	w, err := CheckElements(els, hooks, func(name string) (string, bool) { return envvar.Lookup(o.Environ, name) }, o.Arch)
	for _, w := range append(warnings, w...) {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s\n", w)
	}
	if err != nil {
		return nil, nil, err
	}
	return els, hooks, nil
}

// maxElementBytes bounds the elements' files that go onto the input
// disk, which is made in memory: an element tree is not a way to carry
// large data (or a huge sparse file) into the VM, nor to exhaust the
// host's memory.
const maxElementBytes = 1 << 30

func checkSize(els []*elements.Element) error {
	var total int64
	var biggest *elements.Element
	for _, e := range els {
		total += e.Size
		if biggest == nil || e.Size > biggest.Size {
			biggest = e
		}
	}
	if total > maxElementBytes {
		return fmt.Errorf("the elements' files come to %d MiB, more than the %d MiB dibvm carries into the helper VM (the largest is element %s at %s, %d MiB): fetch large data in a hook instead, e.g. with cache-url",
			total>>20, maxElementBytes>>20, biggest.Name, biggest.Path, biggest.Size>>20)
	}
	return nil
}

// maxInputTar bounds the tar of the elements as written: the hooks are
// in it twice (merged, and in their elements), and links that install
// types lift into install.d travel as the files they lead to, so it can
// outgrow the elements' own size.
const maxInputTar = 2 * maxElementBytes

func inputFiles(spec *api.Spec, els []*elements.Element, hooks *elements.Hooks) ([]iso.File, error) {
	tarball := &cappedBuffer{max: maxInputTar}
	if err := elements.WriteTar(tarball, els, hooks); err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return []iso.File{
		{Name: api.SpecFile, Data: js},
		{Name: api.ElementsTar, Data: tarball.buf.Bytes()},
	}, nil
}

// cappedBuffer is a bytes.Buffer that refuses to grow beyond max.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, fmt.Errorf("the elements make an input of more than %d MiB for the helper VM: fetch large data in a hook instead, e.g. with cache-url", c.max>>20)
	}
	return c.buf.Write(p)
}
