package checkpoint

import (
	"archive/tar"
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// elementsTar writes files (path → content) as the guest's elements tar.
func elementsTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		// Content "-> target" makes a symlink, "0644 data" a file that is
		// not executable.
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755}
		data := files[name]
		if target, ok := strings.CutPrefix(data, "-> "); ok {
			hdr.Typeflag, hdr.Linkname, hdr.Mode, data = tar.TypeSymlink, target, 0o777, ""
		} else if rest, ok := strings.CutPrefix(data, "0644 "); ok {
			hdr.Mode, data = 0o644, rest
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// keyedSteps are the steps of a build of spec with the elements files
// (see elementsTar) and the host's inputs, with their keys.
func keyedSteps(t *testing.T, spec *api.Spec, host []HostInput, files map[string]string) []*Step {
	t.Helper()
	steps, err := StepInputs(spec, host, elementsTar(t, files))
	if err != nil {
		t.Fatal(err)
	}
	chainKeys(steps)
	return steps
}

// changed is files with changes made: each replaced, or removed by "".
func changed(files, changes map[string]string) map[string]string {
	out := maps.Clone(files)
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// TestCheckpointKeys changes one input of a build at a time and checks
// which checkpoints' keys change with it: those of the step the input
// shapes, and every one after it.
func TestCheckpointKeys(t *testing.T) {
	baseFiles := map[string]string{
		"hooks/root.d/10-debootstrap":                   "debootstrap",
		"hooks/environment.d/10-release":                "export DIB_RELEASE=${DIB_RELEASE:-bookworm}",
		"hooks/bin/helper":                              "helper",
		"hooks/pre-install.d/10-pre":                    "pre",
		"hooks/install.d/50-install":                    "install",
		"hooks/post-install.d/50-post":                  "post",
		"hooks/finalise.d/50-final":                     "final",
		"hooks/cleanup.d/50-clean":                      "clean",
		"elements/mine/install.d/50-install":            "install",
		"elements/mine/static/etc/motd":                 "motd",
		"elements/mine/package-installs.yaml":           "vim:",
		"elements/debootstrap/root.d/10-debootstrap":    "debootstrap",
		"elements/debootstrap/environment.d/10-release": "export DIB_RELEASE=${DIB_RELEASE:-bookworm}",
		"elements/mine/extra-data.d/50-extra":           "extra",
		"hooks/extra-data.d/50-extra":                   "extra",
		"elements/mine/block-device-default.yaml":       "- local_loop: {name: image0}",
	}
	baseSpec := func() *api.Spec {
		return &api.Spec{
			ImageName: "img", Elements: []string{"debootstrap", "mine"}, Arch: "amd64",
			Env:   map[string]string{"DIB_RELEASE": "bookworm"},
			Types: []string{"qcow2"}, RootLabel: "cloudimg-rootfs", RootFSType: "ext4",
		}
	}
	keys := func(spec *api.Spec, files map[string]string, host []HostInput) []string {
		t.Helper()
		steps := keyedSteps(t, spec, host, files)
		var out []string
		for _, s := range steps {
			out = append(out, s.key)
		}
		return out
	}
	base := keys(baseSpec(), baseFiles, nil)
	if slices.Contains(base, "") {
		t.Fatalf("every step has hooks, but some have no key: %v", base)
	}
	for _, tc := range []struct {
		name    string
		spec    func(*api.Spec)
		files   map[string]string // replaced ("" removes)
		host    []HostInput
		changed int // the first step whose key changes; 4 for none
	}{
		{name: "install.d hook", files: map[string]string{"hooks/install.d/50-install": "install2", "elements/mine/install.d/50-install": "install2"}, changed: 2},
		{name: "new install.d hook", files: map[string]string{"hooks/install.d/60-more": "more"}, changed: 2},
		{name: "post-install.d hook", files: map[string]string{"hooks/post-install.d/50-post": "post2"}, changed: 3},
		{name: "extra-data.d hook", files: map[string]string{"hooks/extra-data.d/50-extra": "extra2"}, changed: 1},
		{name: "root.d hook", files: map[string]string{"hooks/root.d/10-debootstrap": "debootstrap2"}, changed: 0},
		{name: "environment.d file", files: map[string]string{"hooks/environment.d/10-release": "export DIB_RELEASE=trixie"}, changed: 0},
		{name: "an element's environment.d file", files: map[string]string{"elements/debootstrap/environment.d/10-release": "x"}, changed: 0},
		{name: "bin/ of the hooks", files: map[string]string{"hooks/bin/helper": "helper2"}, changed: 0},
		{name: "static data", files: map[string]string{"elements/mine/static/etc/motd": "motd2"}, changed: 0},
		{name: "package list", files: map[string]string{"elements/mine/package-installs.yaml": "emacs:"}, changed: 0},
		{name: "finalise.d hook", files: map[string]string{"hooks/finalise.d/50-final": "final2"}, changed: 4},
		{name: "cleanup.d hook", files: map[string]string{"hooks/cleanup.d/50-clean": ""}, changed: 4},
		{name: "disk layout", spec: func(s *api.Spec) { s.Layout = &api.Layout{Label: "gpt"} }, changed: 4},
		{name: "output types", spec: func(s *api.Spec) { s.Types = []string{"raw", "tar"} }, changed: 4},
		{name: "image size", spec: func(s *api.Spec) { s.ImageSizeGB = 4 }, changed: 4},
		{name: "DIB_RELEASE", spec: func(s *api.Spec) { s.Env["DIB_RELEASE"] = "trixie" }, changed: 0},
		{name: "the mirror", spec: func(s *api.Spec) { s.Env["DIB_DISTRIBUTION_MIRROR"] = "http://[::1]:8080/debian" }, changed: 0},
		{name: "a variable gone", spec: func(s *api.Spec) { delete(s.Env, "DIB_RELEASE") }, changed: 0},
		{name: "-a", spec: func(s *api.Spec) { s.Arch = "arm64" }, changed: 0},
		{name: "-o", spec: func(s *api.Spec) { s.ImageName = "other" }, changed: 0},
		{name: "-x", spec: func(s *api.Spec) { s.Trace = true }, changed: 0},
		{name: "root label", spec: func(s *api.Spec) { s.RootLabel = "root" }, changed: 0},
		{name: "-p", spec: func(s *api.Spec) { s.Packages = []string{"vim"} }, changed: 2},
		{name: "an element more", spec: func(s *api.Spec) { s.Elements = append(s.Elements, "other") }, changed: 0},
		{name: "a host file", host: []HostInput{{"host file DIB_APT_KEYRING", "0123"}}, changed: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec()
			if tc.spec != nil {
				tc.spec(spec)
			}
			files := changed(baseFiles, tc.files)
			got := keys(spec, files, tc.host)
			for i := range base {
				if same := got[i] == base[i]; same != (i < tc.changed) {
					t.Errorf("step %s: key changed = %v, want %v", api.CheckpointPhases[i], !same, i >= tc.changed)
				}
			}
		})
	}
}

// TestCheckpointStepsWithoutHooks: a step no element has hooks for keeps
// nothing, and the keys chain past it.
func TestCheckpointStepsWithoutHooks(t *testing.T) {
	steps := keyedSteps(t, &api.Spec{ImageName: "i", Elements: []string{"e"}}, nil, map[string]string{
		"hooks/root.d/10-a":         "a",
		"hooks/install.d/10-b":      "b",
		"elements/e/README.rst":     "e",
		"hooks/post-install.d/10-c": "c",
	})
	var run []string
	for _, s := range steps {
		if s.run != (s.key != "") {
			t.Errorf("step %s: run %v but key %q", s.phase, s.run, s.key)
		}
		if s.run {
			run = append(run, s.phase)
		}
	}
	if want := []string{"root.d", "install.d", "post-install.d"}; !slices.Equal(run, want) {
		t.Errorf("steps kept: %v, want %v", run, want)
	}
}

// TestCheckpointKeysInsideAPhase: the key of the step after a hook covers
// the hooks up to it and every other file of the phase, and not the
// hooks after it, so that changing a hook keeps the steps before it.
func TestCheckpointKeysInsideAPhase(t *testing.T) {
	baseFiles := map[string]string{
		"hooks/root.d/10-a":                  "root",
		"hooks/install.d/10-a":               "a",
		"elements/one/install.d/10-a":        "a",
		"hooks/install.d/50-b":               "b",
		"elements/two/install.d/50-b":        "b",
		"hooks/install.d/60-link":            "-> 70-data",
		"hooks/install.d/70-data":            "0644 data",
		"hooks/install.d/80-c":               "c",
		"elements/two/install.d/80-c":        "c",
		"hooks/install.d/README":             "0644 read me",
		"elements/two/install.d/90-dir/x":    "x",
		"hooks/post-install.d/10-p":          "p",
		"elements/one/post-install.d/10-p":   "p",
		"elements/one/package-installs.yaml": "vim:",
	}
	spec := &api.Spec{ImageName: "img", Elements: []string{"one", "two"}, Arch: "amd64"}
	// subs maps "install.d/<hook>" to its key, and the phase's own too.
	subs := func(spec *api.Spec, files map[string]string) map[string]string {
		t.Helper()
		steps := keyedSteps(t, spec, nil, files)
		out := map[string]string{}
		for _, s := range steps {
			if s.phase == "install.d" || s.phase == "post-install.d" {
				out[s.name()] = s.key
				for _, sub := range s.subs {
					out[sub.name()] = sub.key
				}
			}
		}
		return out
	}
	base := subs(spec, baseFiles)
	// After every hook but the last; 70-data does not run.
	want := []string{"install.d", "install.d/10-a", "install.d/50-b", "install.d/60-link", "post-install.d"}
	if got := slices.Sorted(maps.Keys(base)); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	if len(slices.Compact(slices.Sorted(maps.Values(base)))) != len(base) {
		t.Errorf("two steps share a key: %v", base)
	}
	for _, tc := range []struct {
		name  string
		spec  func(*api.Spec)
		files map[string]string // replaced ("" removes)
		kept  []string          // the steps whose keys stay
	}{
		{name: "the last hook", files: map[string]string{"hooks/install.d/80-c": "c2", "elements/two/install.d/80-c": "c2"},
			kept: []string{"install.d/10-a", "install.d/50-b", "install.d/60-link"}},
		{name: "a hook in the middle", files: map[string]string{"hooks/install.d/50-b": "b2", "elements/two/install.d/50-b": "b2"},
			kept: []string{"install.d/10-a"}},
		{name: "the first hook", files: map[string]string{"hooks/install.d/10-a": "a2", "elements/one/install.d/10-a": "a2"}},
		{name: "a new hook in the middle", files: map[string]string{"hooks/install.d/20-new": "new"},
			kept: []string{"install.d/10-a"}},
		{name: "a new last hook", files: map[string]string{"hooks/install.d/99-new": "new"},
			kept: []string{"install.d/10-a", "install.d/50-b", "install.d/60-link"}},
		// A link may run or not; a file that does not run may be read by
		// any hook; so may the files of a directory.
		{name: "a link hook", files: map[string]string{"hooks/install.d/60-link": "-> 10-a"}},
		{name: "a file that does not run", files: map[string]string{"hooks/install.d/70-data": "0644 data2"}},
		{name: "a file with another name", files: map[string]string{"hooks/install.d/README": "0644 read me too"}},
		{name: "a file in a directory", files: map[string]string{"elements/two/install.d/90-dir/x": "x2"}},
		{name: "-p", spec: func(s *api.Spec) { s.Packages = []string{"vim"} },
			kept: []string{"install.d/10-a", "install.d/50-b", "install.d/60-link"}},
		{name: "a post-install.d hook", files: map[string]string{"hooks/post-install.d/10-p": "p2"},
			kept: []string{"install.d", "install.d/10-a", "install.d/50-b", "install.d/60-link"}},
		{name: "a root.d hook", files: map[string]string{"hooks/root.d/10-a": "root2"}},
		{name: "the package list", files: map[string]string{"elements/one/package-installs.yaml": "emacs:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := *spec
			if tc.spec != nil {
				tc.spec(&sp)
			}
			files := changed(baseFiles, tc.files)
			got := subs(&sp, files)
			for _, name := range want {
				if same := got[name] == base[name]; same != slices.Contains(tc.kept, name) {
					t.Errorf("step %s: key kept = %v, want %v", name, same, !same)
				}
			}
		})
	}
}

// A hook that is a link runs what it leads to, which may be a file of a
// phase that shapes no checkpoint: what it leads to is in the keys of
// the link's phase, and of every step inside it.
func TestCheckpointKeysFollowLinks(t *testing.T) {
	files := map[string]string{
		"hooks/root.d/10-a":        "root",
		"hooks/install.d/10-a":     "a",
		"hooks/install.d/20-link":  "-> ../finalise.d/20-x",
		"hooks/install.d/30-b":     "b",
		"hooks/finalise.d/20-x":    "x",
		"hooks/install.d/40-chain": "-> 45-link",
		"hooks/install.d/45-link":  "-> ../finalise.d/30-y",
		"hooks/finalise.d/30-y":    "0644 y",
		"hooks/install.d/50-out":   "-> /usr/bin/true",
	}
	spec := &api.Spec{ImageName: "img", Elements: []string{"one"}, Arch: "amd64"}
	keys := func(files map[string]string) map[string]string {
		out := map[string]string{}
		for _, s := range keyedSteps(t, spec, nil, files) {
			out[s.name()] = s.key
			for _, sub := range s.subs {
				out[sub.name()] = sub.key
			}
		}
		return out
	}
	base := keys(files)
	for _, target := range []string{"hooks/finalise.d/20-x", "hooks/finalise.d/30-y"} {
		got := keys(changed(files, map[string]string{target: "0755 changed"}))
		for _, step := range []string{"install.d", "install.d/10-a", "install.d/20-link", "install.d/30-b"} {
			if got[step] == base[step] {
				t.Errorf("%s changed, and the key of %s did not", target, step)
			}
		}
		if got["root.d"] != base["root.d"] {
			t.Errorf("%s changed the key of root.d", target)
		}
	}
}
