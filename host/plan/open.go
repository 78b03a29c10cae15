package plan

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dibvm/dibvm/elements"
)

// notOpened are the phases whose hooks make a root or a disk: a build
// that opens an existing image (Options.Open) runs neither, since the
// image is both. An operating-system element's root.d is what it skips
// most often: the element is there for the rest of what it does (the
// distribution's DISTRO_NAME, its package tools).
var notOpened = []string{"root.d", "block-device.d"}

// noteNotOpened tells out which of the elements' hooks a build that
// opens an image does not run, by element.
func noteNotOpened(out io.Writer, hooks *elements.Hooks) {
	byElement := map[string][]string{}
	for _, phase := range notOpened {
		run, _ := hooks.Phase(phase)
		for _, h := range run {
			byElement[h.Element.Name] = append(byElement[h.Element.Name], h.Path)
		}
	}
	var lines []string
	for el, paths := range byElement {
		lines = append(lines, fmt.Sprintf("%s (%s)", el, strings.Join(paths, ", ")))
	}
	sort.Strings(lines)
	if len(lines) > 0 {
		fmt.Fprintf(out, "dibvm: the image is the root and the disk: not running the hooks that make them, of %s\n", strings.Join(lines, "; "))
	}
}
