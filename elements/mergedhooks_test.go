package elements

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// The hooks read back from the tar are those dib-run-parts runs, in its
// numeric order: executables for certain, symlinks perhaps, and not a
// plain file, a directory's files or an environment.d file.
func TestReadMergedHooks(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":      "operating-system\n",
		"os/root.d/10-root*":       "#!/bin/sh\n",
		"os/install.d/9-early*":    "#!/bin/sh\n",
		"os/install.d/10-late*":    "#!/bin/sh\n",
		"os/install.d/README":      "not a hook\n",
		"os/install.d/dir/50-x*":   "#!/bin/sh\n",
		"os/environment.d/10-env*": "export A=1\n",
	})
	os.Symlink("10-late", filepath.Join(root, "os", "install.d", "20-link"))
	els := expandTree(t, root, "os")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTar(&buf, els, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMergedHooks(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]MergedHook{
		"root.d":    {{Name: "10-root", Regular: true}},
		"install.d": {{Name: "9-early", Regular: true}, {Name: "10-late", Regular: true}, {Name: "20-link"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged hooks %+v, want %+v", got, want)
	}
}
