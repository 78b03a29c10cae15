package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// dibvm verify finds an output's statement beside it and checks the
// output and, where they are there, the others: a changed file fails,
// one taken away does not, unless it is the one asked about.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	var subjects []provenance.Output
	for name, data := range map[string]string{"img.qcow2": "image", "img.docker.tar": "docker", "img.raw": "raw"} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(data), 0o644)
		sum, _, _ := sha256sum.File(path)
		subjects = append(subjects, provenance.Output{Resource: provenance.Resource{Name: name, Digest: map[string]string{"sha256": sum}}})
	}
	st, _ := provenance.Make(provenance.Build{Spec: &api.Spec{Elements: []string{"vm", "debian-minimal"}}, Version: "0.2.0", Commit: "abc"}, subjects)
	data, _ := st.Marshal()
	os.WriteFile(filepath.Join(dir, "img.provenance.json"), data, 0o644)
	os.Remove(filepath.Join(dir, "img.raw"))

	for _, arg := range []string{"img.qcow2", "img.docker.tar", "img.provenance.json"} {
		var out strings.Builder
		if err := verify(&out, filepath.Join(dir, arg)); err != nil || !strings.Contains(out.String(), "OK") || !strings.Contains(out.String(), "img.raw: not here (not checked)") {
			t.Errorf("verify %s: %v\n%s", arg, err, out.String())
		}
	}
	var out strings.Builder
	if err := verify(&out, filepath.Join(dir, "img.raw")); !errors.Is(err, exitCode(1)) {
		t.Errorf("verify of a file not there: %v\n%s", err, out.String())
	}
	os.WriteFile(filepath.Join(dir, "img.docker.tar"), []byte("changed"), 0o644)
	out.Reset()
	if err := verify(&out, filepath.Join(dir, "img.qcow2")); !errors.Is(err, exitCode(1)) || !strings.Contains(out.String(), "img.docker.tar: DIFFERS") {
		t.Errorf("verify with a changed file: %v\n%s", err, out.String())
	}
	os.WriteFile(filepath.Join(dir, "other.qcow2"), []byte("x"), 0o644)
	if err := verify(&out, filepath.Join(dir, "other.qcow2")); err == nil || !strings.Contains(err.Error(), "no provenance statement") {
		t.Errorf("verify without a statement: %v", err)
	}
}
