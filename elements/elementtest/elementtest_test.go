package elementtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteTree(t *testing.T) {
	root := WriteTree(t, map[string]string{
		"os/element-provides":      "operating-system\n",
		"os/root.d/10-root*":       "#!/bin/bash\ntrue\n",
		"app/element-deps":         "os\n",
		"app/install.d/deep/50-x*": "",
		"top":                      "at the root",
	})
	for _, tc := range []struct {
		path, content string
		executable    bool
	}{
		{"os/element-provides", "operating-system\n", false},
		{"os/root.d/10-root", "#!/bin/bash\ntrue\n", true},
		{"app/element-deps", "os\n", false},
		{"app/install.d/deep/50-x", "", true},
		{"top", "at the root", false},
	} {
		full := filepath.Join(root, tc.path)
		fi, err := os.Stat(full)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if !fi.Mode().IsRegular() || (fi.Mode()&0o100 != 0) != tc.executable {
			t.Errorf("%s: mode %v; want a file, executable %v", tc.path, fi.Mode(), tc.executable)
		}
		if b, _ := os.ReadFile(full); string(b) != tc.content {
			t.Errorf("%s: %q; want %q", tc.path, b, tc.content)
		}
	}
	// The "*" marks the mode; it is not part of the name.
	if _, err := os.Lstat(filepath.Join(root, "os/root.d/10-root*")); !os.IsNotExist(err) {
		t.Errorf("a file named with its \"*\": %v", err)
	}
}
