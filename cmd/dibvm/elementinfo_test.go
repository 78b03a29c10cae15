package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// These run the real binary on real element trees; they need no VM.

func TestElementInfoBuiltinVMDebianMinimal(t *testing.T) {
	r := dibvm(t, []string{"ELEMENTS_PATH="}, time.Minute, "element-info", "--expand-dependencies", "base", "block-device-mbr", "vm", "debian-minimal")
	want := "base block-device-mbr bootloader debian-minimal debootstrap dib-init-system dpkg install-bin install-types manifests modprobe package-installs pkg-map sysprep vm\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("got %q (exit %d, %s), want %q", r.stdout, r.code, r.stderr, want)
	}
}

func TestElementInfoAnswersToItsName(t *testing.T) {
	link := filepath.Join(t.TempDir(), "element-info")
	if err := os.Symlink(dibvmBin, link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, "debian-minimal").Output()
	if err != nil || !strings.HasPrefix(string(out), "debian-minimal debootstrap ") {
		t.Errorf("element-info debian-minimal = %q, %v", out, err)
	}
}

func TestElementInfoEnv(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides": "operating-system\n",
		"app/element-deps":    "os\n",
	})
	r := dibvm(t, []string{"ELEMENTS_PATH=" + root}, time.Minute, "element-info", "--env", "app")
	want := "export IMAGE_ELEMENT='app os'\n" +
		"export IMAGE_ELEMENT_YAML='app: " + root + "/app\nos: " + root + "/os\n'\n" +
		"function get_image_element_array {\n  echo \"[app]=" + root + "/app [os]=" + root + "/os \"\n};\nexport -f get_image_element_array;\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s\nstderr: %s", r.stdout, want, r.stderr)
	}
	// What DIB does with it: eval, then rebuild the array.
	script := r.stdout + `eval declare -A image_elements=($(get_image_element_array)); echo "$IMAGE_ELEMENT|${image_elements[os]}"`
	out, err := exec.Command("bash", "-c", script).Output()
	if err != nil || strings.TrimSpace(string(out)) != "app os|"+root+"/os" {
		t.Errorf("bash read back %q, %v", out, err)
	}
}

func TestElementInfoBadTrees(t *testing.T) {
	for _, c := range []struct {
		name     string
		files    map[string]string
		env      []string
		args     []string
		wantCode int
		want     []string
	}{
		{"missing dependency", map[string]string{"os/element-provides": "operating-system\n", "app/element-deps": "os\nnosuch\n"},
			nil, []string{"app"}, 1, []string{"element nosuch not found", "needed by app"}},
		{"duplicate hooks", map[string]string{"os/element-provides": "operating-system\n", "os/install.d/10-x*": "", "app/element-deps": "os\n", "app/install.d/10-x*": ""},
			nil, []string{"--check", "app"}, 1, []string{"duplicate hook install.d/10-x", "element app", "element os"}},
		{"yaml that does not parse", map[string]string{"os/element-provides": "operating-system\n", "os/package-installs.yaml": "foo: [bar\n"},
			nil, []string{"--check", "os"}, 1, []string{"element os: package-installs.yaml: does not parse"}},
		// The variable is for environment.d to set, as ubuntu-minimal's
		// DIB_UBUNTU_KERNEL: only the build evaluates those.
		{"when on a variable environment.d sets", map[string]string{"os/element-provides": "operating-system\n", "os/package-installs.yaml": "foo:\n  when: DIB_UNSET_FOR_TEST = 1\n",
			"os/environment.d/10-set": "export DIB_UNSET_FOR_TEST=${DIB_UNSET_FOR_TEST:-1}\n"},
			nil, []string{"--check", "os"}, 0, nil},
		{"when on a variable nothing sets", map[string]string{"os/element-provides": "operating-system\n", "os/package-installs.yaml": "foo:\n  when: DIB_UNSET_FOR_TEST = 1\n"},
			nil, []string{"--check", "os"}, 1, []string{"element os: package-installs.yaml: package foo", "DIB_UNSET_FOR_TEST is not set"}},
		{"when that does not parse", map[string]string{"os/element-provides": "operating-system\n", "os/package-installs.yaml": "foo:\n  when: DIB_X is set\n"},
			nil, []string{"--check", "os"}, 1, []string{"element os: package-installs.yaml: package foo", "want VAR = value or VAR != value"}},
		{"skipped hooks warn", map[string]string{"os/element-provides": "operating-system\n", "os/install.d/10-ok*": "", "os/install.d/20-noexec": "", "os/install.d/30-bad.name*": ""},
			nil, []string{"--check", "os"}, 0, []string{"element os: install.d/20-noexec is skipped: not executable", "element os: install.d/30-bad.name is skipped: name does not match"}},
		{"no operating system", map[string]string{"app/element-deps": ""},
			nil, []string{"app"}, 1, []string{"no element provides operating-system"}},
		{"asked for and provided", map[string]string{"os/element-provides": "operating-system\nvirt\n", "virt/element-deps": ""},
			nil, []string{"os", "virt"}, 1, []string{"element virt was asked for, but os already provides it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := elementtest.WriteTree(t, c.files)
			r := dibvm(t, append([]string{"ELEMENTS_PATH=" + root}, c.env...), time.Minute, append([]string{"element-info"}, c.args...)...)
			if r.code != c.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, c.wantCode, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
			noPanic(t, r)
		})
	}
}

func TestElementInfoUnreadableElement(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n"})
	// Unreadable for everyone, root included: a symlink loop.
	os.Symlink("install.d", filepath.Join(root, "os", "install.d"))
	r := dibvm(t, []string{"ELEMENTS_PATH=" + root}, time.Minute, "element-info", "--check", "os")
	if r.code == 0 || !strings.Contains(r.stderr, "element os") || !strings.Contains(r.stderr, "install.d") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	noPanic(t, r)
	// And a path entry that is not a directory.
	r = dibvm(t, []string{"ELEMENTS_PATH=" + root + ":/nonexistent-dibvm-test"}, time.Minute, "element-info", "os")
	if r.code == 0 || !strings.Contains(r.stderr, `ELEMENTS_PATH entry "/nonexistent-dibvm-test" is not a directory`) {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
