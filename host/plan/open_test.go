package plan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeElement makes an element of files (path → content) under dir.
func writeElement(t *testing.T, dir, name string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		path := filepath.Join(dir, name, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// A build that opens an image needs no operating-system element, names
// the hooks that make a root or a disk (which it does not run), and
// writes no outputs of its own.
func TestPlanThatOpensAnImage(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "distro", map[string]string{
		"element-provides": "operating-system\n",
		"root.d/10-root":   "#!/bin/sh\ntrue\n",
	})
	writeElement(t, dir, "changer", map[string]string{
		"install.d/50-change":      "#!/bin/sh\ntrue\n",
		"block-device.d/10-layout": "#!/bin/sh\ntrue\n",
	})
	var out, errOut bytes.Buffer
	o := Options{Output: filepath.Join(t.TempDir(), "changed"), Elements: []string{"changer"}, SkipBase: true, Arch: "amd64",
		ElementsPath: dir, Open: "/layer.qcow2", Command: "true", ScratchSize: 1 << 30, Stdout: &out, Stderr: &errOut}
	p, err := Prepare(o)
	if err != nil {
		t.Fatalf("changer alone: %v", err)
	}
	if !p.Spec.Open || p.Spec.Command != "true" || len(p.Spec.Types) != 0 || p.Spec.Layout != nil {
		t.Errorf("spec %+v: want Open, the command, no types and no layout", p.Spec)
	}
	if want := "not running the hooks that make them, of changer (block-device.d/10-layout)\n"; !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr %q, want it to end %q", errOut.String(), want)
	}

	errOut.Reset()
	o.Elements = []string{"changer", "distro"}
	if _, err := Prepare(o); err != nil {
		t.Fatalf("with an operating-system element: %v", err)
	}
	if want := "of changer (block-device.d/10-layout); distro (root.d/10-root)\n"; !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr %q, want it to end %q", errOut.String(), want)
	}

	o.Types = []string{"qcow2"}
	if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), "-t qcow2: a build that opens an image changes it") {
		t.Errorf("with -t: %v", err)
	}
}
