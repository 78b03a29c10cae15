package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Settings that name a file on the host carry that file into the build,
// and one that names nothing is refused with the variable in the error.
func TestHostFiles(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte("ssh-ed25519 AAAA test\n"), 0o600)
	ring := filepath.Join(dir, "ring.gpg")
	os.WriteFile(ring, []byte("keyring"), 0o600)

	spec := &api.Spec{}
	files, err := hostFiles(map[string]string{
		"DIB_DEV_USER_AUTHORIZED_KEYS": keys, "DIB_APT_KEYRING": ring,
		"DIB_RELEASE": "trixie", "DIB_DEBIAN_KEYRING": "",
	}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || len(spec.HostFiles) != 2 {
		t.Fatalf("files %v, spec %v", files, spec.HostFiles)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Name] = string(f.Data)
	}
	if got[spec.HostFiles["DIB_DEV_USER_AUTHORIZED_KEYS"]] != "ssh-ed25519 AAAA test\n" || got[spec.HostFiles["DIB_APT_KEYRING"]] != "keyring" {
		t.Errorf("carried %v as %v", got, spec.HostFiles)
	}

	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope"), "directory": dir} {
		_, err := hostFiles(map[string]string{"DIB_APT_KEYRING": path}, &api.Spec{})
		if err == nil || !strings.Contains(err.Error(), "DIB_APT_KEYRING="+path) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
