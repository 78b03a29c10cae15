package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sha256sum"
	"github.com/dibvm/dibvm/host/sshsign"
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
	st, _ := provenance.Make(provenance.Build{Spec: &api.Spec{Elements: []string{"vm", "debian-minimal"}}, Version: "0.2.0", Commit: "abc", NotReproducible: []string{"the LVM metadata"}}, subjects)
	data, _ := st.Marshal()
	os.WriteFile(filepath.Join(dir, "img.provenance.json"), data, 0o644)
	os.Remove(filepath.Join(dir, "img.raw"))

	for _, arg := range []string{"img.qcow2", "img.docker.tar", "img.provenance.json"} {
		var out strings.Builder
		if err := verify(&out, filepath.Join(dir, arg), nil); err != nil || !strings.Contains(out.String(), "OK") || !strings.Contains(out.String(), "img.raw: not here (not checked)") || !strings.Contains(out.String(), "not reproducible, as the build said: the LVM metadata") {
			t.Errorf("verify %s: %v\n%s", arg, err, out.String())
		}
	}
	var out strings.Builder
	if err := verify(&out, filepath.Join(dir, "img.raw"), nil); !errors.Is(err, exitCode(1)) {
		t.Errorf("verify of a file not there: %v\n%s", err, out.String())
	}
	os.WriteFile(filepath.Join(dir, "img.docker.tar"), []byte("changed"), 0o644)
	out.Reset()
	if err := verify(&out, filepath.Join(dir, "img.qcow2"), nil); !errors.Is(err, exitCode(1)) || !strings.Contains(out.String(), "img.docker.tar: DIFFERS") {
		t.Errorf("verify with a changed file: %v\n%s", err, out.String())
	}
	os.WriteFile(filepath.Join(dir, "other.qcow2"), []byte("x"), 0o644)
	if err := verify(&out, filepath.Join(dir, "other.qcow2"), nil); err == nil || !strings.Contains(err.Error(), "no provenance statement") {
		t.Errorf("verify without a statement: %v", err)
	}
}

// A signed statement passes verify --trust only when one of the trusted
// keys signed it, as ssh-keygen would sign it; an unsigned one fails
// with --trust and passes, saying so, without.
func TestVerifySignature(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qcow2")
	os.WriteFile(img, []byte("image"), 0o644)
	sum, _, _ := sha256sum.File(img)
	st, _ := provenance.Make(provenance.Build{Spec: &api.Spec{Elements: []string{"vm"}}}, []provenance.Output{{Resource: provenance.Resource{Name: "img.qcow2", Digest: map[string]string{"sha256": sum}}}})
	data, _ := st.Marshal()
	statement := filepath.Join(dir, "img.provenance.json")
	os.WriteFile(statement, data, 0o644)
	keys := map[string]string{}
	for _, name := range []string{"builder", "stranger"} {
		key := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		keys[name] = key
	}
	pub, _ := os.ReadFile(keys["builder"] + ".pub")
	allowed := filepath.Join(dir, "allowed_signers")
	os.WriteFile(allowed, []byte("ci@example.com "+string(pub)), 0o644)
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	check := func(trusted sshsign.Trusted, pass bool, says string) {
		t.Helper()
		var out strings.Builder
		err := verify(&out, img, trusted)
		if (err == nil) != pass || !strings.Contains(out.String(), says) {
			t.Errorf("verify: %v, want passing %v and saying %q:\n%s", err, pass, says, out.String())
		}
	}
	check(nil, true, "not signed")
	check(trusted, false, "NOT SIGNED")
	sign := func(key string) {
		s, err := sshsign.LoadSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := s.Sign(data, provenance.SignatureNamespace)
		os.WriteFile(statement+".sig", sig, 0o644)
	}
	sign(keys["builder"])
	check(nil, true, "signed, but not checked")
	check(trusted, true, "a trusted key")
	sign(keys["stranger"])
	check(trusted, false, "BAD SIGNATURE: not signed by a trusted key")
	sign(keys["builder"])
	os.WriteFile(statement, append(data, ' '), 0o644)
	check(trusted, false, "BAD SIGNATURE")
}
