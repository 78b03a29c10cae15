package sshsign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keygen makes a key pair with OpenSSH's ssh-keygen.
func keygen(t *testing.T, dir, name, keyType, passphrase string) string {
	t.Helper()
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", keyType, "-N", passphrase, "-C", name, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key
}

// What dibvm signs, OpenSSH's ssh-keygen -Y verify accepts; what
// ssh-keygen -Y sign signs, dibvm accepts from a key it trusts, and from
// no other; a changed file, or one signed for another use, is refused.
func TestSignaturesOpenSSHAgreesWith(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is needed (openssh-client; scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	data := []byte(`{"_type":"https://in-toto.io/Statement/v1"}` + "\n")
	const ns = "dibvm-provenance"
	for _, keyType := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			key := keygen(t, dir, keyType, keyType, "")
			s, err := LoadSigner(key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(data, ns)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := os.ReadFile(key + ".pub")
			allowed := filepath.Join(dir, keyType+".allowed")
			os.WriteFile(allowed, []byte("builder@example.com "+string(pub)), 0o644)
			sigFile := filepath.Join(dir, keyType+".sig")
			os.WriteFile(sigFile, sig, 0o644)
			verify := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "builder@example.com", "-n", ns, "-s", sigFile)
			verify.Stdin = bytes.NewReader(data)
			if out, err := verify.CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -Y verify refuses dibvm's signature: %v\n%s", err, out)
			}

			// The other way: signed by ssh-keygen, trusted from the
			// allowed_signers file and from an authorized_keys one.
			msg := filepath.Join(dir, keyType+".msg")
			os.WriteFile(msg, data, 0o644)
			if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", key, "-n", ns, msg).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
			}
			theirs, _ := os.ReadFile(msg + ".sig")
			authorized := filepath.Join(dir, keyType+".authorized")
			os.WriteFile(authorized, []byte("# the build pipeline's key\n\nno-pty "+string(pub)), 0o644)
			for _, file := range []string{allowed, authorized} {
				trusted, err := LoadTrusted(file)
				if err != nil {
					t.Fatal(err)
				}
				for _, sig := range [][]byte{sig, theirs} {
					if fp, err := trusted.Verify(data, sig, ns); err != nil || fp != s.Fingerprint() {
						t.Errorf("%s: Verify: %q, %v", filepath.Base(file), fp, err)
					}
				}
				if _, err := trusted.Verify(append(data, ' '), sig, ns); err == nil || !strings.Contains(err.Error(), "does not match") {
					t.Errorf("a changed file: %v", err)
				}
				if _, err := trusted.Verify(data, sig, "dibvm-cache"); err == nil || !strings.Contains(err.Error(), `a signature for "dibvm-provenance"`) {
					t.Errorf("another namespace: %v", err)
				}
			}
		})
	}
	other := keygen(t, dir, "other", "ed25519", "")
	s, _ := LoadSigner(other)
	sig, _ := s.Sign(data, ns)
	trusted, err := LoadTrusted(filepath.Join(dir, "ed25519.allowed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trusted.Verify(data, sig, ns); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), s.Fingerprint()) {
		t.Errorf("signed by an untrusted key: %v", err)
	}
	if _, err := trusted.Verify(data, []byte("-----BEGIN PGP SIGNATURE-----\n"), ns); err == nil {
		t.Error("not a signature: accepted")
	}
}

// Keys that cannot be used are refused with what to do.
func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	locked := keygen(t, dir, "locked", "ed25519", "secret")
	if _, err := LoadSigner(locked); err == nil || !strings.Contains(err.Error(), "has a passphrase") {
		t.Errorf("a key with a passphrase: %v", err)
	}
	if _, err := LoadSigner(locked + ".pub"); err == nil || !strings.Contains(err.Error(), "not an OpenSSH private key") {
		t.Errorf("a public key: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("ssh-ed25519 AAAA\n"), 0o644)
	if _, err := LoadTrusted(bad); err == nil || !strings.Contains(err.Error(), bad+":1: not a public key line") {
		t.Errorf("a bad key line: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# none yet\n"), 0o644)
	if _, err := LoadTrusted(empty); err == nil || !strings.Contains(err.Error(), "no public keys") {
		t.Errorf("no keys: %v", err)
	}
}

// An allowed_signers line's options limit its key as they do for
// ssh-keygen -Y verify: to its namespaces and its time; a certificate
// authority is refused.
func TestAllowedSignersOptions(t *testing.T) {
	dir := t.TempDir()
	key := keygen(t, dir, "key", "ed25519", "")
	pub, _ := os.ReadFile(key + ".pub")
	s, err := LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("statement\n")
	sig, _ := s.Sign(data, "dibvm-provenance")
	sigFile := filepath.Join(dir, "sig")
	os.WriteFile(sigFile, sig, 0o644)
	for _, tc := range []struct {
		options string
		trusted bool
	}{
		{`namespaces="git"`, false},
		{`namespaces="git,dibvm-*"`, true},
		{`valid-before="20200101"`, false},
		{`valid-after="29990101Z"`, false},
		{`valid-after="20200101",valid-before="29990101"`, true},
	} {
		allowed := filepath.Join(dir, "allowed")
		os.WriteFile(allowed, []byte("ci@example.com "+tc.options+" "+string(pub)), 0o644)
		trusted, err := LoadTrusted(allowed)
		if err != nil {
			t.Fatalf("%s: %v", tc.options, err)
		}
		_, err = trusted.Verify(data, sig, "dibvm-provenance")
		if (err == nil) != tc.trusted {
			t.Errorf("%s: %v, want trusted %v", tc.options, err, tc.trusted)
		}
		verify := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ci@example.com", "-n", "dibvm-provenance", "-s", sigFile)
		verify.Stdin = bytes.NewReader(data)
		if err := verify.Run(); (err == nil) != tc.trusted {
			t.Errorf("%s: ssh-keygen -Y verify: %v, want trusted %v", tc.options, err, tc.trusted)
		}
	}
	allowed := filepath.Join(dir, "ca")
	os.WriteFile(allowed, []byte("*@example.com cert-authority "+string(pub)), 0o644)
	if _, err := LoadTrusted(allowed); err == nil || !strings.Contains(err.Error(), "cert-authority") {
		t.Errorf("cert-authority: %v", err)
	}
}
