package elements

import (
	"archive/tar"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements/runparts"
	"github.com/dibvm/dibvm/guestagent/api"
)

// MergedHook is a hook of the merged tree that dib-run-parts may run.
type MergedHook struct {
	Name string
	// Regular: an executable file, which runs for certain. A symlink
	// runs if what it points to is executable: it may run or not.
	Regular bool
}

// ReadMergedHooks reads back, from a tar WriteTar wrote, the hooks
// dib-run-parts runs in each phase, in its order: executable files in
// api.HooksDir/<phase>, which run for certain, and symlinks there, which
// run if what they point to is executable. It is read from the tar, not
// from the elements, so that it says what the guest is given.
func ReadMergedHooks(r io.Reader) (map[string][]MergedHook, error) {
	runs := map[string]map[string]bool{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rest, ok := strings.CutPrefix(hdr.Name, api.HooksDir+"/")
		if !ok {
			continue
		}
		phase, name, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(name, "/") || !slices.Contains(Phases, phase) || !runparts.ScriptName.MatchString(name) {
			continue
		}
		if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 != 0 {
			if runs[phase] == nil {
				runs[phase] = map[string]bool{}
			}
			runs[phase][name] = hdr.Typeflag == tar.TypeReg
		}
	}
	out := map[string][]MergedHook{}
	for phase, names := range runs {
		sorted := slices.Collect(maps.Keys(names))
		runparts.SortNumeric(sorted) // as the guest sorts them
		for _, n := range sorted {
			out[phase] = append(out[phase], MergedHook{Name: n, Regular: names[n]})
		}
	}
	return out, nil
}
