package plan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

func writeKeyring(t *testing.T, path, name string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The ubuntu element's settings are checked before the VM boots, and
// become the proxy's signed sources: DIB_CLOUD_IMAGES with the user's
// keyring, and Ubuntu's server with Ubuntu's key.
func TestCloudImageSources(t *testing.T) {
	dir := t.TempDir()
	keyrings := filepath.Join(dir, "keyrings")
	os.Mkdir(keyrings, 0o755)
	writeKeyring(t, filepath.Join(keyrings, ubuntuCloudKeyring), "ubuntu")
	mine := filepath.Join(dir, "mine.gpg")
	writeKeyring(t, mine, "mine")
	os.WriteFile(filepath.Join(dir, "junk.gpg"), []byte("not a key"), 0o644)

	if ci, err := prepareCloudImages([]string{"debian"}, map[string]string{"DIB_CLOUD_IMAGES": "::"}); ci != nil || err != nil {
		t.Errorf("without ubuntu: %v, %v", ci, err)
	}
	for env, want := range map[string]string{
		"DIB_CLOUD_IMAGES=ftp://x/":                                  "DIB_CLOUD_IMAGES=ftp://x/: want the http:// or https:// URL",
		"DIB_UBUNTU_CLOUD_KEYRING=" + filepath.Join(dir, "junk.gpg"): "not an OpenPGP keyring",
		"DIB_UBUNTU_CLOUD_KEYRING=" + filepath.Join(dir, "none.gpg"): "DIB_UBUNTU_CLOUD_KEYRING=" + filepath.Join(dir, "none.gpg") + ": no such file",
	} {
		k, v, _ := strings.Cut(env, "=")
		if _, err := prepareCloudImages([]string{"ubuntu"}, map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", env, err, want)
		}
	}

	ci, err := prepareCloudImages([]string{"ubuntu"}, map[string]string{
		"DIB_CLOUD_IMAGES": "http://127.0.0.1:8080/noble/current", "DIB_UBUNTU_CLOUD_KEYRING": mine,
	})
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := ci.sources(keyrings)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Prefix != "http://127.0.0.1:8080/noble/current/" || srcs[1].Prefix != ubuntuCloudImages {
		t.Fatalf("sources %+v", srcs)
	}
	if srcs[0].Keyring[0].PrimaryIdentity().UserId.Name != "mine" || srcs[1].Keyring[0].PrimaryIdentity().UserId.Name != "ubuntu" {
		t.Errorf("keyrings: %s, %s", srcs[0].KeyName, srcs[1].KeyName)
	}
	if srcs[1].Upstream != "https://cloud-images.ubuntu.com/" {
		t.Errorf("Ubuntu's images are fetched from %q", srcs[1].Upstream)
	}
	// Without DIB_CLOUD_IMAGES, the user's keyring is for Ubuntu's server.
	ci, err = prepareCloudImages([]string{"ubuntu"}, map[string]string{"DIB_UBUNTU_CLOUD_KEYRING": mine})
	if err != nil {
		t.Fatal(err)
	}
	if srcs, err = ci.sources(keyrings); err != nil || len(srcs) != 1 || srcs[0].Keyring[0].PrimaryIdentity().UserId.Name != "mine" {
		t.Errorf("with only DIB_UBUNTU_CLOUD_KEYRING: %+v, %v", srcs, err)
	}
	if _, err := ci.sources(t.TempDir()); err == nil || !strings.Contains(err.Error(), ubuntuCloudKeyring) {
		t.Errorf("an appliance without the key: %v", err)
	}
}
