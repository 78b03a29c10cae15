package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// cloudImageServer stands in for cloud-images.ubuntu.com, which these
// machines cannot reach: on the host's IPv6 loopback (the guest's
// no_proxy names 127.0.0.1, its own), a noble/current directory with an
// image and a SHA256SUMS whose signature in SHA256SUMS.gpg is made by
// signer. tamper, if set, changes what is served after signing.
func cloudImageServer(t *testing.T, signer *openpgp.Entity, image []byte, tamper func(files map[string][]byte)) string {
	t.Helper()
	sum := sha256.Sum256(image)
	sums := []byte(hex.EncodeToString(sum[:]) + " *noble-server-cloudimg-amd64.squashfs\n")
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, signer, bytes.NewReader(sums), nil); err != nil {
		t.Fatal(err)
	}
	// The sums are under /elsewhere/ too, where the proxy, which checks
	// only under DIB_CLOUD_IMAGES, passes them through.
	files := map[string][]byte{
		"/noble/current/noble-server-cloudimg-amd64.squashfs": image,
		"/noble/current/SHA256SUMS":                           sums,
		"/noble/current/SHA256SUMS.gpg":                       sig.Bytes(),
		"/elsewhere/SHA256SUMS":                               sums,
		"/elsewhere/SHA256SUMS.gpg":                           sig.Bytes(),
	}
	if tamper != nil {
		tamper(files)
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("a server on the IPv6 loopback: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// newKeyring makes an OpenPGP key and writes its public keyring where the
// build's user can read it, as a user passes a mirror's key.
func newKeyring(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "dibvm test", name+"@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir, whose parent only the test's user may enter.
	dir, err := os.MkdirTemp("", "dibvm-keyring-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, name+".gpg")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return e, path
}

// The ubuntu element takes Ubuntu's cloud image only if its SHA256SUMS is
// signed by the cloud image key and the image matches the sums: a
// tampered image and sums signed by another key each stop the build in
// root.d, with a message naming the file, and leave nothing behind. The
// host's proxy refuses them first; where it does not look (sums from
// elsewhere, as SHA256SUMS may say), the build's own check does. The key
// is the user's (DIB_UBUNTU_CLOUD_KEYRING, a file on the host), as for a
// mirror of the cloud images.
func TestCreateUbuntuRefusesUncheckedCloudImage(t *testing.T) {
	needVM(t)
	trusted, keyring := newKeyring(t, "cloud-images")
	mallory, _ := newKeyring(t, "mallory")
	image := bytes.Repeat([]byte("not really squashfs "), 4096)
	for _, c := range []struct {
		name   string
		signer *openpgp.Entity
		tamper func(map[string][]byte)
		env    []string // with the server's address for ADDR
		want   string
	}{
		{"tampered image", trusted, func(f map[string][]byte) {
			f["/noble/current/noble-server-cloudimg-amd64.squashfs"] = []byte("a tampered image")
		}, nil, "noble-server-cloudimg-amd64.squashfs has SHA256 "},
		{"signed by another key", mallory, nil, nil, "SHA256SUMS.gpg: signed by a key that is not in DIB_UBUNTU_CLOUD_KEYRING"},
		{"signed by another key, checked in the build", mallory, nil, []string{"SHA256SUMS=http://ADDR/elsewhere/SHA256SUMS"},
			"SHA256SUMS.gpg from http://ADDR/elsewhere/SHA256SUMS.gpg is not a good signature of SHA256SUMS by a key in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := cloudImageServer(t, c.signer, image, c.tamper)
			outDir := t.TempDir()
			// Not runDir: a subtest's temporary directory is too long a
			// path for the unix sockets in the run directory.
			dir, err := os.MkdirTemp("", "dibvm-rt-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			env := []string{"DIBVM_RUNTIME_DIR=" + dir}
			env = append(env, "DIB_CLOUD_IMAGES=http://"+addr+"/noble/current", "DIB_UBUNTU_CLOUD_KEYRING="+keyring,
				"DIB_IMAGE_CACHE="+filepath.Join(t.TempDir(), "images"))
			for _, e := range c.env {
				env = append(env, strings.ReplaceAll(e, "ADDR", addr))
			}
			want := strings.ReplaceAll(c.want, "ADDR", addr)
			r := dibvm(t, env, 10*time.Minute, "create", "--allow-net", addr, "-t", "tar", "-o", filepath.Join(outDir, "img"), "ubuntu")
			if r.code == 0 {
				t.Fatal("the build took an image it should have refused")
			}
			for _, want := range []string{want, "element: ubuntu", "phase:   root.d", "script:  10-cache-ubuntu-tarball"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the output lacks %q:\n%s", want, tail(r.stderr, 40))
				}
			}
			if left := entries(t, outDir); len(left) > 0 {
				t.Errorf("left in the output directory: %v", left)
			}
			waitNoQEMU(t, dir, 5*time.Second)
			if left := entries(t, dir); len(left) > 0 {
				t.Errorf("left in the runtime dir: %v", left)
			}
		})
	}
}
