package outputs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/diskformat"
)

// stageEmitted stages the files hooks wrote beside the image, each in
// the image's directory under the name the guest gave it (checked by
// host/session against api.CheckEmittedName: a plain name that starts
// with the image's). A name that dibvm's own outputs take is refused:
// the image is not to be replaced by a hook's file, nor the file lost
// under the image. On an error, those staged so far come back with it.
func stageEmitted(o Options, disk string, r *api.Result) ([]*stagedFile, error) {
	own := ownPaths(o, r)
	var staged []*stagedFile
	for _, f := range r.Emitted {
		final := filepath.Join(filepath.Dir(o.Output), f.Name)
		if own[final] {
			return staged, fmt.Errorf("a %s hook wrote %s beside the image, the name of an output dibvm writes itself: give the hook's file another name", f.Phase, final)
		}
		s, err := stage(final, func(tmp *os.File) error { return copySection(tmp, disk, f.Offset, f.Size) })
		if err != nil {
			return staged, err
		}
		s.emittedBy = f.Phase
		staged = append(staged, s)
	}
	return staged, nil
}

// ownPaths are the paths of the outputs dibvm writes itself for o.
func ownPaths(o Options, r *api.Result) map[string]bool {
	own := map[string]bool{}
	for _, t := range o.Types {
		name, _ := treeOutput(o, t, "", r)
		if _, ok := diskformat.QemuImg(t); ok {
			name = o.Output + "." + t
		}
		if name == "" {
			continue
		}
		own[filepath.Clean(name)] = true
		for _, k := range o.Checksums {
			own[filepath.Clean(name+"."+k)] = true
		}
	}
	if r.ManifestsSize > 0 && o.ManifestSaveDir == "" {
		own[filepath.Clean(o.Output+".d")] = true
	}
	// The records of the build, whether it writes them or not: a hook's
	// file is not to pass for one.
	own[filepath.Clean(o.Output+LockSuffix)] = true
	own[filepath.Clean(o.Output+ProvenanceSuffix)] = true
	own[filepath.Clean(o.Output+ProvenanceSuffix+SignatureSuffix)] = true
	return own
}

// The build's records beside its outputs: IMAGE.lock, the packages it
// installed (see host/lockfile), and IMAGE.provenance.json, its
// provenance statement (see host/provenance), with its signature,
// IMAGE.provenance.json.sig, where the user gave a key.
const (
	LockSuffix       = ".lock"
	ProvenanceSuffix = ".provenance.json"
	SignatureSuffix  = ".sig"
)

func removeStaged(staged []*stagedFile) {
	for _, s := range staged {
		os.RemoveAll(s.tmp)
	}
}
