package pkginstalls

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/elements"
)

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

type call struct {
	element string
	yaml    string
}

// want is phase -> install and uninstall lists, compared as sets of
// "pkg element" strings, as DIB's IsMatchingInstallList does.
type want map[string][2][]string

func squash(t *testing.T, env map[string]string, calls ...call) (*Result, error) {
	t.Helper()
	r := NewResult()
	for _, c := range calls {
		entries, _, err := Parse([]byte(c.yaml))
		if err != nil {
			t.Fatalf("parse %q: %v", c.yaml, err)
		}
		if err := r.Add(c.element, entries, envOf(env)); err != nil {
			return r, err
		}
	}
	return r, nil
}

func check(t *testing.T, r *Result, w want) {
	t.Helper()
	for phase, lists := range w {
		l := r.Phase(phase)
		if l == nil {
			t.Errorf("phase %s missing", phase)
			continue
		}
		for i, got := range [][]Pair{l.Install, l.Uninstall} {
			var gs []string
			for _, p := range got {
				gs = append(gs, p[0]+" "+p[1])
			}
			if !sameSet(gs, lists[i]) {
				t.Errorf("%s %s = %q, want %q", phase, []string{"install", "uninstall"}[i], gs, lists[i])
			}
		}
	}
	for _, p := range r.Phases() {
		if _, ok := w[p]; !ok {
			t.Errorf("unexpected phase %s", p)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

const kernelObjs = `
linux-image-generic:
  - not-arch: arm64
    when: "DIB_UBUNTU_KERNEL = linux-image-generic"
  - arch: arm64
    when: ["DIB_RELEASE != xenial", "DIB_UBUNTU_KERNEL = linux-image-generic"]
linux-generic-hwe-16.04:
  arch: arm64
  when: ["DIB_RELEASE = xenial", "DIB_UBUNTU_KERNEL = linux-image-generic"]
`

// The cases of DIB's test_package_squash.py, and more.
func TestSquashDIBCases(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		calls   []call
		want    want
		wantErr string
	}{
		{"simple", nil, []call{{"test_element", "test_package:"}},
			want{"install.d": {{"test_package test_element"}, nil}}, ""},
		{"arch", map[string]string{"ARCH": "arm64"},
			[]call{{"test_element", "test_package: ''\ntest_arm64_package: {arch: arm64}\ndo_not_install: {not-arch: arm64}\n"}},
			want{"install.d": {{"test_package test_element", "test_arm64_package test_element"}, nil}}, ""},
		{"param_list_x86", map[string]string{"ARCH": "x86_64", "DIB_UBUNTU_KERNEL": "linux-image-generic", "DIB_RELEASE": "focal"},
			[]call{{"test_element", kernelObjs}}, want{"install.d": {{"linux-image-generic test_element"}, nil}}, ""},
		{"param_list_arm64_xenial", map[string]string{"ARCH": "arm64", "DIB_UBUNTU_KERNEL": "linux-image-generic", "DIB_RELEASE": "xenial"},
			[]call{{"test_element", kernelObjs}}, want{"install.d": {{"linux-generic-hwe-16.04 test_element"}, nil}}, ""},
		{"param_list_arm64_focal", map[string]string{"ARCH": "arm64", "DIB_UBUNTU_KERNEL": "linux-image-generic", "DIB_RELEASE": "focal"},
			[]call{{"test_element", kernelObjs}}, want{"install.d": {{"linux-image-generic test_element"}, nil}}, ""},
		{"skip_when", map[string]string{"DIB_FEATURE": "1"},
			[]call{{"test_element", "skipped_package: {when: DIB_FEATURE=0}\nnot_skipped_package: {when: DIB_FEATURE=1}\nnot_equal_package: {when: DIB_FEATURE!=0}\nnot_equal_skipped_package: {when: DIB_FEATURE!=1}\n"}},
			want{"install.d": {{"not_skipped_package test_element", "not_equal_package test_element"}, nil}}, ""},
		{"skip_no_var", nil, []call{{"test_element", "package: {when: MISSING_VAR=1}"}}, nil, `when "MISSING_VAR=1": MISSING_VAR is not set`},
		{"skip_when_list", map[string]string{"DIB_A_FEATURE": "1", "DIB_B_FEATURE": "1", "DIB_C_FEATURE": "1"},
			[]call{{"test_element", "not_skipped_package: {when: [DIB_A_FEATURE=1, DIB_B_FEATURE=1, DIB_C_FEATURE=1]}\nskipped_package: {when: [DIB_A_FEATURE=1, DIB_B_FEATURE=0, DIB_C_FEATURE=1]}\n"}},
			want{"install.d": {{"not_skipped_package test_element"}, nil}}, ""},
		{"install_overrides_uninstall_install_first", nil,
			[]call{{"test_element1", "test_package: ''"}, {"test_element2", "test_package: {build-only: 'true'}"}},
			want{"install.d": {{"test_package test_element1", "test_package test_element2"}, nil}}, ""},
		{"install_overrides_uninstall_uninstall_first", nil,
			[]call{{"test_element1", "test_package: {build-only: 'true'}"}, {"test_element2", "test_package: ''"}},
			want{"install.d": {{"test_package test_element1", "test_package test_element2"}, nil}}, ""},
		{"install_overrides_uninstall_uninstall_first_step1", nil,
			[]call{{"test_element1", "test_package: {build-only: 'true'}"}},
			want{"install.d": {{"test_package test_element1"}, {"test_package test_element1"}}}, ""},
		// Beyond DIB's tests.
		{"later_uninstall_of_installed_is_dropped", nil,
			[]call{{"e1", "p:"}, {"e2", "p: {uninstall: true}"}}, want{"install.d": {{"p e1"}, nil}}, ""},
		{"later_install_cancels_uninstall", nil,
			[]call{{"e1", "p: {uninstall: true}"}, {"e2", "p:"}}, want{"install.d": {{"p e2"}, nil}}, ""},
		{"uninstall_false_is_not_uninstall", nil,
			[]call{{"e1", "p: {uninstall: false}"}}, want{"install.d": {{"p e1"}, nil}}, ""},
		{"build_only_wins_over_uninstall", nil,
			[]call{{"e1", "p: {uninstall: true, build-only: true}"}}, want{"install.d": {{"p e1"}, {"p e1"}}}, ""},
		{"installtype_default_is_source", nil,
			[]call{{"my-elem", "p: {installtype: package}\nq: {installtype: source}"}}, want{"install.d": {{"q my-elem"}, nil}}, ""},
		{"installtype_per_element", map[string]string{"DIB_INSTALLTYPE_my_elem": "package"},
			[]call{{"my-elem", "p: {installtype: package}\nq: {installtype: source}"}}, want{"install.d": {{"p my-elem"}, nil}}, ""},
		{"installtype_default_env", map[string]string{"DIB_DEFAULT_INSTALLTYPE": "package"},
			[]call{{"my-elem", "p: {installtype: package}"}}, want{"install.d": {{"p my-elem"}, nil}}, ""},
		{"python_version", map[string]string{"DIB_PYTHON_VERSION": "3"},
			[]call{{"e", "p2: {dib_python_version: 2}\np3: {dib_python_version: 3}"}}, want{"install.d": {{"p3 e"}, nil}}, ""},
		// A ruled-out install has no effect (DIB let it cancel the uninstall).
		{"ruled_out_install_keeps_uninstall", map[string]string{"ARCH": "amd64"},
			[]call{{"e1", "p: {build-only: true}"}, {"e2", "p: {arch: arm64}"}}, want{"install.d": {{"p e1"}, {"p e1"}}}, ""},
		// Arch lists are trimmed, as DIB's README means (its code does not).
		{"arch_list_trimmed", map[string]string{"ARCH": "ppc64le"},
			[]call{{"e", "lshw: {arch: 'ppc64, ppc64le'}\ndmidecode: {not-arch: 'ppc64, ppc64le'}"}}, want{"install.d": {{"lshw e"}, nil}}, ""},
		{"phase", nil, []call{{"e", "grub2: {phase: pre-install.d}\nfoo:"}},
			want{"pre-install.d": {{"grub2 e"}, nil}, "install.d": {{"foo e"}, nil}}, ""},
		{"when_spaces", map[string]string{"X": " 1"},
			[]call{{"e", "a: {when: 'X = 1'}\nb: {when: 'X= 1'}"}}, want{}, ""},
		{"when_unset_in_later_statement", map[string]string{"A": "0"},
			[]call{{"e", "p: {when: [A = 1, B = 1]}"}}, nil, "B is not set"},
		{"when_malformed", nil, []call{{"e", "p: {when: FOO}"}}, nil, `when "FOO": want VAR = value`},
		{"arch_unset", nil, []call{{"e", "p: {arch: amd64}"}}, nil, "ARCH is not set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := squash(t, c.env, c.calls...)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, r, c.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, wantErr string }{
		{"a: [b", "does not parse"},
		{"- a\n- b\n", "want a mapping of package names"},
		{"p: {arch: amd64, not-arch: arm64}", "arch and not-arch are both given"},
		{"p: 7", `want nothing, a mapping or a list of mappings, got "7"`},
		{"p: [1]", "list items must be mappings"},
		{"p: {uninstall: maybe}", `want true or false, got "maybe"`},
		{"p: {phase: [a]}", "want a single value"},
	} {
		_, _, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("Parse(%q) error %v, want %q", c.in, err, c.wantErr)
		}
	}
	for _, empty := range []string{"", "null", "# only a comment\n", "~"} {
		if e, _, err := Parse([]byte(empty)); err != nil || len(e) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want nothing", empty, e, err)
		}
	}
	_, warn, err := Parse([]byte("p: {not_arch: arm64}"))
	if err != nil || len(warn) != 1 || !strings.Contains(warn[0], `unknown key "not_arch"`) {
		t.Errorf("unknown key: %v %v", warn, err)
	}
}

// JSON files parse too, and the output keeps DIB's shape and phase order.
func TestSquashElementsJSONAndYAML(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	// DIB's own debian-minimal and debootstrap lists.
	write("debian-minimal/package-installs.yaml", "linux-image-amd64:\n  arch: amd64\nlinux-image-arm64:\n  arch: arm64\nnetbase:\n")
	write("debian-minimal/element-provides", "operating-system\n")
	write("debian-minimal/element-deps", "debootstrap\n")
	write("debootstrap/package-installs.yaml", "adduser:\nca-certificates:\ncloud-initramfs-growroot:\nlocales:\nlsb-release:\n  phase: pre-install.d\n")
	write("debootstrap/package-installs.json", `{"foo": null, "bar": {"phase": "post-install.d"}}`)
	lib, err := elements.NewLibrary(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	els, err := elements.Expand(lib, []string{"debian-minimal"})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := Squash(els, envOf(map[string]string{"ARCH": "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(r)
	// debian-minimal sorts first; in debootstrap the .json is read before
	// the .yaml.
	wantJSON := `{"install.d":{"install":[["linux-image-amd64","debian-minimal"],["netbase","debian-minimal"],["foo","debootstrap"],["adduser","debootstrap"],["ca-certificates","debootstrap"],["cloud-initramfs-growroot","debootstrap"],["locales","debootstrap"]],"uninstall":[]},"post-install.d":{"install":[["bar","debootstrap"]],"uninstall":[]},"pre-install.d":{"install":[["lsb-release","debootstrap"]],"uninstall":[]}}`
	if string(out) != wantJSON {
		t.Errorf("got  %s\nwant %s", out, wantJSON)
	}
	if !reflect.DeepEqual(r.Phases(), []string{"install.d", "post-install.d", "pre-install.d"}) {
		t.Errorf("phases %v", r.Phases())
	}
}

func TestSquashErrorNamesElementAndFile(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "os"), 0o755)
	os.WriteFile(filepath.Join(root, "os", "element-provides"), []byte("operating-system\n"), 0o644)
	os.WriteFile(filepath.Join(root, "os", "package-installs.yaml"), []byte("p:\n  when: DIB_NOPE = 1\n"), 0o644)
	lib, _ := elements.NewLibrary(root, nil)
	els, _ := elements.Expand(lib, []string{"os"})
	_, _, err := Squash(els, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "element os: package-installs.yaml: package p:") || !strings.Contains(err.Error(), "DIB_NOPE is not set") {
		t.Errorf("error %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "null", "a:\n", kernelObjs, `{"foo": null, "bar": {"phase": "post-install.d"}}`,
		"p: {arch: 'a, b', when: [X = 1, Y != 2], build-only: yes}", "p: [{uninstall: true}, {phase: x}]",
		"&a x: *a", "p: !!binary aGk=",
	} {
		f.Add([]byte(s))
	}
	env := envOf(map[string]string{"ARCH": "amd64", "X": "1", "Y": "2"})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _, err := Parse(data)
		if err != nil {
			return
		}
		r := NewResult()
		if err := r.Add("fuzz", entries, env); err != nil {
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		for _, p := range r.Phases() {
			if p == "" {
				t.Fatalf("empty phase from %q", data)
			}
		}
	})
}
