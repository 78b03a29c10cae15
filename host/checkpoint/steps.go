package checkpoint

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/runparts"
	"github.com/dibvm/dibvm/guestagent/api"
)

// Step is one point a build can be kept at: after a phase of
// api.CheckpointPhases, or after one of its hooks (a sub-step), with
// what shapes the tree up to there since the phase before.
type Step struct {
	phase  string
	hook   string // of a sub-step: the hook of phase it is after
	inputs Inputs
	base   string // the key of the step after the phase before; "" for the first
	key    string
	run    bool // some element has hooks for it, or it installs -p packages

	// Of a phase's step: its hooks in run order, and the sub-steps
	// after each but the last (set by chainKeys).
	hooks []hookFiles
	subs  []*Step
}

// name is what the build and its checkpoints call the step (see
// api.CheckpointName).
func (s *Step) name() string { return api.CheckpointName(s.phase, s.hook) }

// hookFiles is a hook of a phase, with the names its file has among the
// inputs: hooks/<phase>/<hook>, and elements/<element>/<phase>/<hook>.
// A regular hook runs for certain; a symlink may run or not: it stays in
// every key.
type hookFiles struct {
	elements.MergedHook
	files []string
}

// HostInput is a file of the host that reaches the guest, by its digest.
type HostInput struct{ Name, Digest string }

// stepPhases are the phases each step runs: the one it is named for and
// those since the step before.
var stepPhases = map[string][]string{
	"root.d":         {"root.d"},
	"pre-install.d":  {"extra-data.d", "pre-install.d"},
	"install.d":      {"install.d"},
	"post-install.d": {"post-install.d"},
}

// specPostFields are the settings of a Spec that matter only after the
// last checkpoint (the disk, the outputs) or that the keys record apart
// (the environment, the host's files, the checkpoints themselves).
var specPostFields = []string{
	"types", "break", "layout", "image_size_gb", "extra_size_gb", "journal_mib",
	"mkfs_options", "max_online_resize", "checkpoints", "resume",
	"env", "host_files", "host_disks", "packages",
}

// StepInputs is what shapes the tree in each step of a build of spec
// whose elements tar is tarball, as far as the plan knows it
// (StartKeeper adds the helper VM's part to the first): for the first,
// the build's settings, the environment, the files of the host it
// carries or lends, and every file of the hooks and elements that is no
// phase's; for each step, the files of its phases. When unsure whether
// something matters, it is in: a key may miss needlessly, never hit
// wrongly.
func StepInputs(spec *api.Spec, host []HostInput, tarball []byte) ([]*Step, error) {
	steps := make([]*Step, len(api.CheckpointPhases))
	byPhase := map[string]*Step{}
	for i, ph := range api.CheckpointPhases {
		steps[i] = &Step{phase: ph, inputs: Inputs{}}
		for _, p := range stepPhases[ph] {
			byPhase[p] = steps[i]
		}
	}
	if err := addSettings(steps[0].inputs, spec, host); err != nil {
		return nil, err
	}
	if len(spec.Packages) > 0 {
		s := byPhase["install.d"]
		s.inputs.AddString(extraPackagesInput, strings.Join(spec.Packages, ","))
		s.run = true
	}
	t := &tarInputs{first: steps[0].inputs, byPhase: byPhase}
	if err := t.read(tarball); err != nil {
		return nil, err
	}
	t.addLinks()
	merged, err := elements.ReadMergedHooks(bytes.NewReader(tarball))
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		for _, h := range merged[s.phase] {
			s.hooks = append(s.hooks, hookFiles{MergedHook: h, files: t.files[s.phase][h.Name]})
		}
	}
	steps[0].run = true // root.d must make the tree
	return steps, nil
}

// guestSets are the variables the guest sets itself whatever the host's
// value (see guestagent/dibbuild): where the host keeps its files does
// not shape a tree, and runners that share checkpoints keep theirs in
// different places.
var guestSets = []string{"DIB_IMAGE_CACHE"}

// addSettings adds to first, the first step's inputs, the build's
// settings but those of specPostFields, its environment and the host's
// files it carries or lends.
func addSettings(first Inputs, spec *api.Spec, host []HostInput) error {
	first.AddString("checkpoint format", "1")
	js, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	var settings map[string]json.RawMessage
	if err := json.Unmarshal(js, &settings); err != nil {
		return err
	}
	for k, v := range settings {
		if !slices.Contains(specPostFields, k) {
			first.Add("setting "+k, v)
		}
	}
	for k, v := range spec.Env {
		if slices.Contains(guestSets, k) {
			continue
		}
		first.AddString("variable "+k, v)
	}
	for _, in := range host {
		first[in.Name] = in.Digest
	}
	return nil
}

// tarInputs reads the elements tar into the inputs of the steps.
type tarInputs struct {
	first   Inputs           // the first step's: files of no phase
	byPhase map[string]*Step // the step each phase's files shape

	// The names of the files of each hook of each step's own phase, by
	// phase and hook.
	files    map[string]map[string][]string
	digests  map[string]string // of every file, by name
	links    map[string]string // of every symlink, by name
	linkStep map[string]Inputs // the inputs each symlink is among
}

// read adds each file of tarball, by the digest of its type, mode, link
// and content, to the inputs of the step its phase shapes.
func (t *tarInputs) read(tarball []byte) error {
	t.files, t.digests, t.links, t.linkStep = map[string]map[string][]string{}, map[string]string{}, map[string]string{}, map[string]Inputs{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		h := sha256.New()
		fmt.Fprintf(h, "%c %o %s\x00", hdr.Typeflag, hdr.Mode, hdr.Linkname)
		if _, err := io.Copy(h, tr); err != nil {
			return err
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		t.add(hdr, name, hex.EncodeToString(h.Sum(nil)))
	}
}

// add records the tar's entry hdr, named name, by its digest.
func (t *tarInputs) add(hdr *tar.Header, name, digest string) {
	phase, below := phaseOf(name)
	s := t.byPhase[phase]
	t.digests[name] = digest
	switch {
	case phase == "":
		t.first[name] = digest
	case s != nil:
		s.inputs[name] = digest
		s.run = s.run || (strings.HasPrefix(name, api.HooksDir+"/") && hdr.Typeflag != tar.TypeDir)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		t.links[name] = hdr.Linkname
		switch {
		case phase == "":
			t.linkStep[name] = t.first
		case s != nil:
			t.linkStep[name] = s.inputs
		}
	}
	// Files of the phases after the last step shape nothing kept.
	if s == nil || s.phase != phase || strings.Contains(below, "/") || !runparts.ScriptName.MatchString(below) {
		return
	}
	if t.files[phase] == nil {
		t.files[phase] = map[string][]string{}
	}
	t.files[phase][below] = append(t.files[phase][below], name)
}

// addLinks adds what each symlink leads to. A symlink is its link's
// text, and the content of what it leads to in the tar, which may be a
// file of another phase (a hook of install.d may lead to one of
// finalise.d): that is among the inputs of the link's step too, and
// stays in the keys of its sub-steps (only regular hooks' files leave
// them).
func (t *tarInputs) addLinks() {
	for name, in := range t.linkStep {
		if target, ok := resolveLink(name, t.links); ok && t.digests[target] != "" {
			in[name+" -> "+target] = t.digests[target]
		}
	}
}

// chainKeys sets the key of each step that runs, each made on the one
// before, and makes the sub-steps of each: the step after each of its
// hooks but the last. A sub-step's key is made on the same key as its
// phase's, from the same inputs but for the hooks that run after it
// (and the -p packages, installed after all of install.d). The hooks
// still to run cannot have shaped the tree, and the files of a phase
// are those of its hooks, or read by them. So a change to one hook
// leaves the keys of the sub-steps before it as they were.
func chainKeys(steps []*Step) {
	parent := ""
	for _, s := range steps {
		if !s.run {
			continue
		}
		s.base = parent
		s.key = Key(parent, s.phase, s.inputs)
		s.subs = nil
		for i := 0; i < len(s.hooks)-1; i++ {
			in := maps.Clone(s.inputs)
			delete(in, extraPackagesInput)
			for _, later := range s.hooks[i+1:] {
				if later.Regular {
					for _, f := range later.files {
						delete(in, f)
					}
				}
			}
			sub := &Step{phase: s.phase, hook: s.hooks[i].Name, inputs: in, base: parent, run: true}
			sub.key = Key(parent, sub.name(), in)
			s.subs = append(s.subs, sub)
		}
		parent = s.key
	}
}

// resolveLink follows the symlink name of the tar, whose links are
// links, to what it leads to in the tar, through at most a few links.
// A link that leads out of the tar (an absolute path, into the image)
// leads to nothing the tar holds.
func resolveLink(name string, links map[string]string) (string, bool) {
	for range 8 {
		link, ok := links[name]
		if !ok {
			return name, true
		}
		if path.IsAbs(link) {
			return "", false
		}
		name = path.Join(path.Dir(name), link)
		if !filepath.IsLocal(name) {
			return "", false
		}
	}
	return "", false
}

// extraPackagesInput names the -p packages among install.d's inputs.
const extraPackagesInput = "-p packages"

// phaseOf is the phase a path of the elements tar belongs to, if any,
// and the path below the phase's directory: api.HooksDir/<phase>/<below>
// and api.ElementsDir/<element>/<phase>/<below>.
func phaseOf(name string) (phase, below string) {
	parts := strings.SplitN(name, "/", 4)
	var dir string
	switch {
	case len(parts) >= 2 && parts[0] == api.HooksDir:
		dir, below = parts[1], strings.Join(parts[2:], "/")
	case len(parts) >= 3 && parts[0] == api.ElementsDir:
		dir, below = parts[2], strings.Join(parts[3:], "/")
	}
	if slices.Contains(elements.Phases, dir) {
		return dir, below
	}
	return "", ""
}
