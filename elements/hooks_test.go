package elements

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/elements/elementtest"
)

func expandTree(t *testing.T, root string, want ...string) []*Element {
	t.Helper()
	lib, err := NewLibrary(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	els, err := Expand(lib, want)
	if err != nil {
		t.Fatal(err)
	}
	return els
}

func TestMergeHooks(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":                      "operating-system\n",
		"os/root.d/10-root*":                       "#!/bin/sh\n",
		"os/install.d/20-install*":                 "#!/bin/sh\n",
		"os/install.d/nova-source-install/74-x*":   "#!/bin/sh\n",
		"os/environment.d/10-os.bash":              "export A=1\n",
		"os/package-installs.yaml":                 "foo:\n",
		"os/tests/test_x.py":                       "",
		"os/test-elements/t1/element-deps":         "",
		"app/element-deps":                         "os\n",
		"app/install.d/10-app*":                    "#!/bin/sh\n",
		"app/install.d/nova-package-install/74-x*": "#!/bin/sh\n",
		"app/install.d/50-not-executable":          "#!/bin/sh\n",
		"app/install.d/60-has.dot*":                "#!/bin/sh\n",
		"app/environment.d/05-app":                 "export B=2\n",
		"app/environment.d/bad~":                   "",
		"app/package-installs.yaml":                "bar:\n",
		"app/test-elements/t1/element-deps":        "",
	})
	els := expandTree(t, root, "app")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	run, warnings := h.Phase("install.d")
	var got []string
	for _, hk := range run {
		got = append(got, hk.Element.Name+":"+hk.Path)
	}
	if want := []string{"app:install.d/10-app", "os:install.d/20-install"}; !reflect.DeepEqual(got, want) {
		t.Errorf("install.d runs %v, want %v", got, want)
	}
	wantWarn := []string{
		"element app: install.d/50-not-executable is skipped: not executable (chmod +x it to run it)",
		"element app: install.d/60-has.dot is skipped: name does not match ^[0-9A-Za-z_-]+$ (rename it to run it)",
	}
	if !reflect.DeepEqual(warnings, wantWarn) {
		t.Errorf("warnings %q, want %q", warnings, wantWarn)
	}
	// Nested directories merge; top-level files and test directories stay out.
	for _, p := range []string{"install.d/nova-source-install/74-x", "install.d/nova-package-install/74-x"} {
		if _, ok := h.Files[p]; !ok {
			t.Errorf("%s missing from the merged tree", p)
		}
	}
	for p := range h.Files {
		if !strings.Contains(p, "/") || strings.HasPrefix(p, "tests/") || strings.HasPrefix(p, "test-elements/") {
			t.Errorf("%s should not be in the merged tree", p)
		}
	}
	env, envWarn := h.Environment()
	if len(env) != 2 || env[0].Path != "environment.d/05-app" || env[1].Path != "environment.d/10-os.bash" {
		t.Errorf("environment %v", env)
	}
	if len(envWarn) != 1 || !strings.Contains(envWarn[0], "environment.d/bad~") {
		t.Errorf("environment warnings %q", envWarn)
	}
}

func TestMergeHooksDuplicateNamesBoth(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":    "operating-system\n",
		"os/install.d/10-same*":  "",
		"app/element-deps":       "os\n",
		"app/install.d/10-same*": "",
	})
	_, err := MergeHooks(expandTree(t, root, "app"))
	if err == nil {
		t.Fatal("duplicate hook accepted")
	}
	for _, want := range []string{"duplicate hook install.d/10-same", "element app", "element os", filepath.Join(root, "app"), filepath.Join(root, "os")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMergeHooksUnreadableDirectory(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n"})
	// A symlink loop cannot be read by anyone, root included.
	if err := os.Symlink("loop", filepath.Join(root, "os", "loop")); err != nil {
		t.Fatal(err)
	}
	lib, err := NewLibrary(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Expand(lib, []string{"os"})
	if err == nil || !strings.Contains(err.Error(), "element os") || !strings.Contains(err.Error(), "loop -> loop: the symlink is a loop") {
		t.Errorf("error %v does not name the element and the link", err)
	}
	if os.Geteuid() != 0 {
		root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n", "os/install.d/10-x*": ""})
		os.Chmod(filepath.Join(root, "os", "install.d"), 0)
		defer os.Chmod(filepath.Join(root, "os", "install.d"), 0o755)
		_, err := MergeHooks(expandTree(t, root, "os"))
		if err == nil || !strings.Contains(err.Error(), "cannot read install.d") {
			t.Errorf("error %v does not name the unreadable directory", err)
		}
	}
}

func TestBuiltinHookModes(t *testing.T) {
	e := &Element{Name: "b", Builtin: true}
	for p, want := range map[string]os.FileMode{
		"install.d/10-x":           0o755,
		"bin/tool":                 0o755,
		"environment.d/10-x":       0o644,
		"install.d/sub-install/10": 0o644,
		"static/etc/x":             0o644,
	} {
		if got := mode(e, p, 0o444); got != want {
			t.Errorf("mode of built-in %s = %o, want %o", p, got, want)
		}
	}
}

func TestApplyInstallTypes(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":                        "operating-system\n",
		"os/install.d/10-base*":                      "",
		"os/install.d/nova-source-install/74-nova*":  "source",
		"os/install.d/nova-package-install/74-nova*": "package",
		"os/install.d/nova-package-install/75-more*": "package",
	})
	for _, c := range []struct {
		environ []string
		want    string
	}{
		{nil, "10-base 74-nova<-install.d/nova-source-install/74-nova"},
		{[]string{"DIB_INSTALLTYPE_nova=package"}, "10-base 74-nova<-install.d/nova-package-install/74-nova 75-more<-install.d/nova-package-install/75-more"},
	} {
		h, err := MergeHooks(expandTree(t, root, "os"))
		if err != nil {
			t.Fatal(err)
		}
		h.ApplyInstallTypes(c.environ)
		run, _ := h.Phase("install.d")
		var got []string
		for _, hk := range run {
			s := path.Base(hk.Path)
			if hk.File() != hk.Path {
				s += "<-" + hk.File()
			}
			got = append(got, s)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("environ %v: install.d runs %q, want %q", c.environ, strings.Join(got, " "), c.want)
		}
	}
}
