package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dibvm/dibvm/host/plan"
)

// As disk-image-create, -o loses the suffix of the one type asked for;
// with several types, or another suffix, it is the name as given.
func TestCheckOutputStripsTheTypeSuffix(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		output string
		types  []string
		want   string
	}{
		{"img.qcow2", []string{"qcow2"}, "img"},
		{"img.tar", []string{"tar"}, "img"},
		{"img.qcow2", []string{"qcow2", "tar"}, "img.qcow2"},
		{"img.raw", []string{"qcow2"}, "img.raw"},
		{"img.qcow2.qcow2", []string{"qcow2"}, "img.qcow2"},
		{"img", []string{"qcow2"}, "img"},
	} {
		o := plan.Options{Output: filepath.Join(dir, c.output), Types: c.types}
		var p problems
		checkOutput(&o, &p)
		if len(p) > 0 || o.Output != filepath.Join(dir, c.want) {
			t.Errorf("-o %s -t %v: output %s, problems %q; want %s", c.output, c.types, o.Output, p, c.want)
		}
	}
}

// A cache to be made is checked where it would be made from; nothing is
// made by the check.
func TestCheckWritableDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{dir, true},
		{filepath.Join(dir, "a", "b", "c"), true},
		{file, false},
		{filepath.Join(file, "sub"), false},
	} {
		if err := checkWritableDir(c.path); (err == nil) != c.ok {
			t.Errorf("checkWritableDir(%s) = %v, want ok %v", c.path, err, c.ok)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("the check made a directory")
	}
}

// -p takes Debian's package names and rpm's, and nothing else.
func TestPackageName(t *testing.T) {
	for name, want := range map[string]bool{
		"vim": true, "libc6:amd64": true, "linux-image-amd64=6.12.1-1": true, "g++": true,
		"NetworkManager": true, "python3-PyYAML": true, "kernel-core.x86_64": true, "xorg_x11": true,
		"Bad!": false, "c++ compiler": false, "vim/x": false, "NetworkManager=1.2": false,
		"-rf": false, "": false, "$(reboot)": false,
	} {
		if got := packageName.MatchString(name); got != want {
			t.Errorf("packageName(%q) = %v, want %v", name, got, want)
		}
	}
}
