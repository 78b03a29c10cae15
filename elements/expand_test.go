package elements

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture is DIB's test_elementdeps.py tree: element name -> deps,
// provides. The override directory comes first on the path.
type fixtureElement struct {
	dir, name      string
	deps, provides []string
}

var depsFixture = []fixtureElement{
	{"elements", "requires-foo", []string{"foo"}, nil},
	{"elements", "foo", nil, []string{"operating-system"}},
	{"elements", "requires-requires-foo", []string{"requires-foo"}, nil},
	{"elements", "self", []string{"self"}, nil},
	{"elements", "provides_virtual", nil, []string{"virtual"}},
	{"elements", "also_provides_virtual", nil, []string{"virtual"}},
	{"elements", "requires_virtual", []string{"virtual"}, []string{"operating-system"}},
	{"elements", "virtual", []string{"extra_dependency"}, nil},
	{"elements", "extra_dependency", nil, nil},
	{"elements", "circular1", []string{"circular2"}, []string{"operating-system"}},
	{"elements", "circular2", []string{"circular1"}, nil},
	{"elements", "provides_new_virtual", nil, []string{"new_virtual", "operating-system"}},
	{"elements", "requires_new_virtual", []string{"new_virtual"}, nil},
	{"elements", "override_element", nil, nil},
	{"element-override", "override_element", nil, nil},
}

// writeElements makes the fixture as DIB's test does: both files always
// written, lines joined with "\n" and no trailing newline.
func writeElements(t *testing.T, els []fixtureElement) (root, elementsPath string) {
	t.Helper()
	root = t.TempDir()
	for _, e := range els {
		dir := filepath.Join(root, e.dir, e.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "element-deps"), []byte(strings.Join(e.deps, "\n")), 0o644)
		os.WriteFile(filepath.Join(dir, "element-provides"), []byte(strings.Join(e.provides, "\n")), 0o644)
	}
	return root, filepath.Join(root, "element-override") + ":" + filepath.Join(root, "elements")
}

func TestExpandDIBCases(t *testing.T) {
	root, path := writeElements(t, depsFixture)
	E := func(n string) string { return filepath.Join(root, "elements", n) }
	O := func(n string) string { return filepath.Join(root, "element-override", n) }
	for _, c := range []struct {
		name    string
		want    []string
		expect  map[string]string // name -> path
		wantErr string
	}{
		{"non_transitive_deps", []string{"requires-foo"}, map[string]string{"foo": E("foo"), "requires-foo": E("requires-foo")}, ""},
		{"missing_deps", []string{"fake"}, nil, "element fake not found"},
		{"transitive_deps", []string{"requires-requires-foo"},
			map[string]string{"requires-requires-foo": E("requires-requires-foo"), "requires-foo": E("requires-foo"), "foo": E("foo")}, ""},
		{"no_deps", []string{"foo"}, map[string]string{"foo": E("foo")}, ""},
		{"self", []string{"self", "foo"}, map[string]string{"self": E("self"), "foo": E("foo")}, ""},
		{"circular", []string{"circular1"}, map[string]string{"circular1": E("circular1"), "circular2": E("circular2")}, ""},
		// virtual (and its dependency) is provided, so not pulled in.
		{"provide", []string{"provides_virtual", "requires_virtual"},
			map[string]string{"requires_virtual": E("requires_virtual"), "provides_virtual": E("provides_virtual")}, ""},
		{"provide_other_order", []string{"requires_virtual", "provides_virtual"},
			map[string]string{"requires_virtual": E("requires_virtual"), "provides_virtual": E("provides_virtual")}, ""},
		{"provide_conflict", []string{"virtual", "provides_virtual"}, nil, "element virtual was asked for, but provides_virtual already provides it"},
		// new_virtual exists only as something provided.
		{"provide_virtual_ordering", []string{"requires_new_virtual", "provides_new_virtual"},
			map[string]string{"requires_new_virtual": E("requires_new_virtual"), "provides_new_virtual": E("provides_new_virtual")}, ""},
		{"elements_provide_same", []string{"provides_virtual", "also_provides_virtual"}, nil, "virtual is provided by both provides_virtual and also_provides_virtual"},
		{"no_os_element", []string{"provides_virtual"}, nil, "no element provides operating-system"},
		{"duplicated_os_passed_as_element", []string{"circular1", "operating-system"}, nil, "element operating-system was asked for, but circular1 already provides it"},
		{"element_override", []string{"override_element", "foo"}, map[string]string{"foo": E("foo"), "override_element": O("override_element")}, ""},
		// Beyond DIB's tests: DIB processes a name given twice twice and
		// then reports it as providing operating-system twice; an
		// element that provides nothing may come twice.
		{"same_element_twice", []string{"foo", "foo"}, nil, "element foo is given twice, and it provides operating-system"},
		{"plain_element_twice", []string{"requires-foo", "requires-foo"}, map[string]string{"foo": E("foo"), "requires-foo": E("requires-foo")}, ""},
		{"self_only", []string{"self"}, nil, "no element provides operating-system"},
	} {
		t.Run(c.name, func(t *testing.T) {
			lib, err := NewLibrary(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Expand(lib, c.want)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Expand(%v) error = %v, want %q", c.want, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand(%v): %v", c.want, err)
			}
			paths := map[string]string{}
			for _, e := range got {
				paths[e.Name] = e.Path
			}
			if !reflect.DeepEqual(paths, c.expect) {
				t.Errorf("Expand(%v) = %v, want %v", c.want, paths, c.expect)
			}
		})
	}
}

func TestExpandOverrideWarns(t *testing.T) {
	root, path := writeElements(t, depsFixture)
	lib, _ := NewLibrary(path, nil)
	if _, err := Expand(lib, []string{"override_element", "foo"}); err != nil {
		t.Fatal(err)
	}
	want := "element override_element at " + filepath.Join(root, "element-override", "override_element") + " overrides " + filepath.Join(root, "elements", "override_element")
	if w := lib.Warnings(); len(w) != 1 || w[0] != want {
		t.Errorf("warnings %q, want [%q]", w, want)
	}
}

// Elements of ELEMENTS_PATH that override built-in ones the build uses
// are named in one line, however many there are.
func TestExpandBuiltinOverridesWarnOnce(t *testing.T) {
	_, path := writeElements(t, []fixtureElement{
		{"elements", "os", nil, []string{"operating-system"}},
		{"elements", "base", nil, nil},
		{"elements", "dpkg", nil, nil},
		{"elements", "unused", nil, nil},
		{"element-override", "unrelated", nil, nil},
	})
	lib, _ := NewLibrary(path, Builtin())
	if _, err := Expand(lib, []string{"os", "base", "dpkg"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"ELEMENTS_PATH's elements base, dpkg override the built-in ones of the same name"}
	if w := lib.Warnings(); !reflect.DeepEqual(w, want) {
		t.Errorf("warnings %q, want %q", w, want)
	}
}

// An empty ELEMENTS_PATH entry is refused, as DIB refuses it; an empty
// ELEMENTS_PATH is the built-in elements alone.
func TestEmptyElementsPathEntry(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir + "::" + dir, dir + ":", ":" + dir} {
		if _, err := NewLibrary(p, nil); err == nil || !strings.Contains(err.Error(), "has an empty entry") {
			t.Errorf("NewLibrary(%q) = %v, want an error about the empty entry", p, err)
		}
	}
	if _, err := NewLibrary("", Builtin()); err != nil {
		t.Errorf("an empty ELEMENTS_PATH: %v", err)
	}
}

// Lines are stripped as Python's str.strip() strips them in DIB.
func TestParseListStripsAsPython(t *testing.T) {
	got := ParseList([]byte("a\r\n\x1fb\x1c\n\u00a0c\u2003\n \t\n"))
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %q, want %q", got, want)
	}
}

func TestExpandMissingNamesChain(t *testing.T) {
	_, path := writeElements(t, append(depsFixture,
		fixtureElement{"elements", "requires-fake", []string{"fake"}, nil},
		fixtureElement{"elements", "requires-requires-fake", []string{"requires-fake"}, nil}))
	lib, _ := NewLibrary(path, nil)
	_, err := Expand(lib, []string{"foo", "requires-requires-fake"})
	if err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "element fake not found") ||
		!strings.Contains(err.Error(), "needed by requires-fake <- requires-requires-fake") {
		t.Errorf("error %v does not name the missing element and who needs it", err)
	}
}

func TestInvalidElementsPathEntry(t *testing.T) {
	_, path := writeElements(t, depsFixture)
	_, err := NewLibrary(path+":/not/a/dir", nil)
	if err == nil || !strings.Contains(err.Error(), `ELEMENTS_PATH entry "/not/a/dir" is not a directory`) {
		t.Errorf("error %v", err)
	}
}

func TestElementNamesCannotEscape(t *testing.T) {
	_, path := writeElements(t, depsFixture)
	lib, _ := NewLibrary(path, nil)
	for _, name := range []string{"../elements/foo", "..", "a/b", ""} {
		if _, err := lib.Get(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want not found", name, err)
		}
	}
}

func TestCommandLineDefaults(t *testing.T) {
	for _, c := range []struct {
		args     []string
		skipBase bool
		arch     string
		want     []string
	}{
		{[]string{"vm", "debian-minimal"}, false, "amd64", []string{"base", "vm", "debian-minimal", "block-device-mbr"}},
		{[]string{"vm", "debian-minimal"}, false, "arm64", []string{"base", "vm", "debian-minimal", "block-device-efi"}},
		{[]string{"vm", "debian-minimal"}, true, "amd64", []string{"vm", "debian-minimal", "block-device-mbr"}},
		{[]string{"vm", "block-device-gpt", "debian-minimal"}, false, "amd64", []string{"base", "vm", "block-device-gpt", "debian-minimal"}},
		{[]string{"debian-minimal"}, false, "amd64", []string{"base", "debian-minimal"}},
	} {
		if got := CommandLine(c.args, c.skipBase, c.arch); !reflect.DeepEqual(got, c.want) {
			t.Errorf("CommandLine(%v, %v, %s) = %v, want %v", c.args, c.skipBase, c.arch, got, c.want)
		}
	}
}

// The built-in library expands the operating-system elements to the sets
// DIB master builds (computed from its element-deps and element-provides).
func TestBuiltinVMDebianMinimal(t *testing.T) {
	lib, err := NewLibrary("", Builtin())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{CommandLine([]string{"vm", "debian-minimal"}, false, "amd64"),
			"base block-device-mbr bootloader debian-minimal debootstrap dib-init-system dpkg install-bin install-types manifests modprobe package-installs pkg-map sysprep vm"},
		{CommandLine([]string{"vm", "debian-minimal"}, true, "amd64"),
			"block-device-mbr bootloader debian-minimal debootstrap dpkg install-bin manifests modprobe package-installs pkg-map sysprep vm"},
		{[]string{"base", "debian-minimal"},
			"base debian-minimal debootstrap dib-init-system dpkg install-bin install-types manifests modprobe package-installs pkg-map sysprep"},
		{CommandLine([]string{"vm", "debian"}, false, "amd64"),
			"base block-device-mbr bootloader debian debian-minimal debootstrap dib-init-system dpkg install-bin install-static install-types manifests modprobe openssh-server package-installs pkg-map runtime-ssh-host-keys sysprep vm"},
		{CommandLine([]string{"vm", "ubuntu-minimal"}, false, "amd64"),
			"base block-device-mbr bootloader debootstrap dib-init-system dpkg install-bin install-types manifests modprobe package-installs pkg-map sysprep ubuntu-common ubuntu-minimal vm"},
		{CommandLine([]string{"vm", "ubuntu"}, false, "amd64"),
			"base block-device-mbr bootloader cache-url cloud-init-datasources dib-init-system dkms dpkg install-bin install-types manifests package-installs pkg-map sysprep ubuntu ubuntu-common vm"},
	} {
		got, err := Expand(lib, c.args)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(Names(got), " "); s != c.want {
			t.Errorf("Expand(%v) =\n %s\nwant\n %s", c.args, s, c.want)
		}
	}
	for _, c := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"vm", "debian-minimal"}, "element block-device not found"},
		{[]string{"vm", "block-device-mbr"}, "no element provides operating-system"},
		{[]string{"vm", "debian-minimal", "block-device-mbr", "block-device-efi"}, "block-device is provided by both block-device-mbr and block-device-efi"},
	} {
		if _, err := Expand(lib, c.args); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("Expand(%v) error %v, want %q", c.args, err, c.wantErr)
		}
	}
}

func TestParseList(t *testing.T) {
	got := ParseList([]byte("  a\n\nb \r\na\n\tc"))
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %q, want %q", got, want)
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"", "a\nb\n", "  x \r\n\n y", "dup\ndup", "\x00\xff\n#c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		names := ParseList(data)
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || n != strings.TrimSpace(n) || strings.Contains(n, "\n") {
				t.Fatalf("bad name %q from %q", n, data)
			}
			if seen[n] {
				t.Fatalf("duplicate %q from %q", n, data)
			}
			seen[n] = true
		}
	})
}

// An element given twice is one element, unless it provides something:
// DIB then fails, and so does dibvm, saying why.
func TestExpandTwice(t *testing.T) {
	_, path := writeElements(t, depsFixture)
	lib, _ := NewLibrary(path, nil)
	if _, err := Expand(lib, []string{"foo", "requires-foo", "requires-foo"}); err != nil {
		t.Errorf("an element without provides, twice: %v", err)
	}
	lib, _ = NewLibrary(path, nil)
	for _, e := range depsFixture {
		if len(e.provides) > 0 && e.dir == "elements" {
			_, err := Expand(lib, []string{e.name, e.name})
			if err == nil || !strings.Contains(err.Error(), "element "+e.name+" is given twice, and it provides") {
				t.Errorf("Expand(%s twice) = %v", e.name, err)
			}
			return
		}
	}
	t.Fatal("the fixture has no element that provides something")
}

// Elements run on an existing image need no operating-system element,
// and may still have one.
func TestExpandOnImage(t *testing.T) {
	_, path := writeElements(t, depsFixture)
	lib, _ := NewLibrary(path, nil)
	if _, err := Expand(lib, []string{"virtual"}); err == nil || !strings.Contains(err.Error(), "no element provides operating-system") {
		t.Errorf("Expand without an operating system: %v", err)
	}
	els, err := ExpandOnImage(lib, []string{"virtual"})
	if err != nil || !reflect.DeepEqual(Names(els), []string{"extra_dependency", "virtual"}) {
		t.Errorf("ExpandOnImage(virtual) = %v, %v", Names(els), err)
	}
	els, err = ExpandOnImage(lib, []string{"requires-foo"})
	if err != nil || !reflect.DeepEqual(Names(els), []string{"foo", "requires-foo"}) {
		t.Errorf("ExpandOnImage(requires-foo) = %v, %v", Names(els), err)
	}
}
