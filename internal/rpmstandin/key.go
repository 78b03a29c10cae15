package rpmstandin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Key is an OpenPGP signing key in a GnuPG home of its own: the key a
// stand-in repository's packages and metadata are signed with.
type Key struct {
	// Home is the key's GNUPGHOME, passed to gpg and rpmsign by option,
	// never through the process environment.
	Home string
	// UID is the key's user ID, which names it to gpg and rpmsign.
	UID string
	// Public is the armored public key.
	Public []byte
}

// NewKey generates an RSA signing key without a passphrase in a GnuPG
// home under t.TempDir(). The gpg-agent that gpg starts for it is
// stopped when the test ends.
func NewKey(t testing.TB, name string) *Key {
	t.Helper()
	home := gnupgHome(t)
	k := &Key{Home: home, UID: name + " <rpm-standin@example.invalid>"}
	// Registered after the home's own clean-up, so it runs first.
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	if _, err := k.gpg("--passphrase", "", "--quick-gen-key", k.UID, "rsa3072", "sign", "never"); err != nil {
		t.Fatalf("generate a signing key: %v", err)
	}
	pub, err := k.gpg("--armor", "--export", k.UID)
	if err != nil || len(pub) == 0 {
		t.Fatalf("export the public key of %s: %v", k.UID, err)
	}
	k.Public = pub
	return k
}

// gnupgHome is a new GnuPG home, mode 0700, under t.TempDir(); or,
// where that path is too long for gpg-agent's sockets in it (a unix
// socket's name has at most 108 bytes), in the system's temporary
// directory, removed when the test ends.
func gnupgHome(t testing.TB) string {
	home := t.TempDir()
	if len(home)+len("/S.gpg-agent.browser") >= 100 {
		var err error
		if home, err = os.MkdirTemp("", "gpg-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

// gpg runs gpg in the key's home, without a terminal, and returns its
// standard output.
func (k *Key) gpg(args ...string) ([]byte, error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", k.Home, "--batch", "--quiet", "--pinentry-mode", "loopback"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// detachSign writes file.asc, an armored detached signature of file, as
// dnf's repo_gpgcheck reads repomd.xml.asc.
func (k *Key) detachSign(file string) error {
	_, err := k.gpg("--yes", "--local-user", k.UID, "--armor", "--detach-sign", "--output", file+".asc", file)
	return err
}

// signRPMs signs each rpm in place with rpmsign --addsign.
func (k *Key) signRPMs(files []string) error {
	if len(files) == 0 {
		return nil
	}
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		return err
	}
	args := []string{
		"--define", "_gpg_path " + k.Home,
		"--define", "_gpg_name " + k.UID,
		"--define", "__gpg " + gpg,
		"--addsign",
	}
	cmd := exec.Command("rpmsign", append(args, files...)...)
	// rpmsign asks the terminal for a passphrase unless stdin is not one.
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rpmsign --addsign: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WritePublic writes the armored public key to path.
func (k *Key) WritePublic(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, k.Public, 0o644)
}
