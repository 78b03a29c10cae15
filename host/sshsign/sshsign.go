// Package sshsign signs files with a user's OpenSSH key and checks such
// signatures against the keys the user trusts, in the SSHSIG format that
// `ssh-keygen -Y sign` makes and `ssh-keygen -Y verify` checks: no key
// infrastructure beyond the one every user already has.
package sshsign

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// A Signer signs with one private key.
type Signer struct {
	signer ssh.Signer
	file   string
}

// LoadSigner reads an OpenSSH private key (id_ed25519, as ssh-keygen
// writes it). A key with a passphrase is refused: dibvm runs unattended.
func LoadSigner(file string) (*Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%s: the key has a passphrase; give a key without one (ssh-keygen -t ed25519 -N '' -f KEY), kept where only the signing pipeline reads it", file)
	case err != nil:
		return nil, fmt.Errorf("%s: not an OpenSSH private key: %w", file, err)
	}
	return &Signer{signer: s, file: file}, nil
}

// PublicKey is the key's public half, as authorized_keys writes it.
func (s *Signer) PublicKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.signer.PublicKey())))
}

// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l shows it.
func (s *Signer) Fingerprint() string { return ssh.FingerprintSHA256(s.signer.PublicKey()) }

// Sign is the armored signature of data under namespace.
func (s *Signer) Sign(data []byte, namespace string) ([]byte, error) {
	sig, err := sshsig.Sign(bytes.NewReader(data), s.signer, sshsig.HashSHA512, namespace)
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", s.file, err)
	}
	return sshsig.Armor(sig), nil
}

// Trusted are the public keys whose signatures a user accepts.
type Trusted []TrustedKey

// A TrustedKey is a key and what its line in allowed_signers limits it
// to: namespaces (patterns, as OpenSSH matches them) and a time.
type TrustedKey struct {
	Key                     ssh.PublicKey
	Namespaces              []string // none: any
	ValidAfter, ValidBefore time.Time
}

// LoadTrusted reads public keys one a line, as OpenSSH's allowed_signers
// (principals, then the key) or authorized_keys (options, then the key)
// writes them; blank lines and # comments are skipped. A line that is
// neither is an error that names it.
func LoadTrusted(file string) (Trusted, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys Trusted
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, options, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not a public key line (allowed_signers: PRINCIPALS KEYTYPE KEY; authorized_keys: KEYTYPE KEY): %w", file, n, err)
		}
		tk, err := withOptions(key, options)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		keys = append(keys, tk)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public keys", file)
	}
	return keys, nil
}

// parseKeyLine reads an authorized_keys line or, failing that, an
// allowed_signers line, whose first field names the principals.
func parseKeyLine(line string) (ssh.PublicKey, []string, error) {
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err == nil {
		return key, options, nil
	}
	if _, rest, ok := strings.Cut(line, " "); ok {
		if key, _, options, _, err2 := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest))); err2 == nil {
			return key, options, nil
		}
	}
	return nil, nil, err
}

// withOptions is key limited as its line's options say, as
// ssh-keygen -Y verify reads allowed_signers: a certificate authority is
// refused (dibvm checks keys, not certificates).
func withOptions(key ssh.PublicKey, options []string) (TrustedKey, error) {
	tk := TrustedKey{Key: key}
	for _, o := range options {
		name, value, _ := strings.Cut(o, "=")
		value = strings.Trim(value, `"`)
		var err error
		switch strings.ToLower(name) {
		case "cert-authority":
			return tk, errors.New("cert-authority: dibvm checks signatures by keys, not certificates; list the signing key itself")
		case "namespaces":
			tk.Namespaces = strings.Split(value, ",")
		case "valid-after":
			tk.ValidAfter, err = parseTime(value)
		case "valid-before":
			tk.ValidBefore, err = parseTime(value)
		}
		if err != nil {
			return tk, fmt.Errorf("%s: %w", o, err)
		}
	}
	return tk, nil
}

// parseTime reads allowed_signers' YYYYMMDD[HHMM[SS]][Z]: local time,
// or UTC with Z.
func parseTime(s string) (time.Time, error) {
	loc := time.Local
	if t, ok := strings.CutSuffix(s, "Z"); ok {
		s, loc = t, time.UTC
	}
	for _, layout := range []string{"20060102150405", "200601021504", "20060102"} {
		if len(s) == len(layout) {
			return time.ParseInLocation(layout, s, loc)
		}
	}
	return time.Time{}, errors.New("want YYYYMMDD[HHMM[SS]][Z]")
}

// allows says whether tk may sign for namespace now.
func (tk TrustedKey) allows(namespace string, now time.Time) bool {
	if !tk.ValidAfter.IsZero() && now.Before(tk.ValidAfter) || !tk.ValidBefore.IsZero() && !now.Before(tk.ValidBefore) {
		return false
	}
	if len(tk.Namespaces) == 0 {
		return true
	}
	for _, pattern := range tk.Namespaces {
		if ok, _ := path.Match(pattern, namespace); ok {
			return true
		}
	}
	return false
}

// ErrUntrusted is a signature, good or not, by no key the user trusts.
var ErrUntrusted = errors.New("not signed by a trusted key")

// Verify checks that armored is a good signature of data under namespace
// by one of t's keys, and returns that key's fingerprint.
func (t Trusted) Verify(data, armored []byte, namespace string) (string, error) {
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return "", fmt.Errorf("not an SSH signature: %w", err)
	}
	if sig.Namespace != namespace {
		return "", fmt.Errorf("a signature for %q, not %q", sig.Namespace, namespace)
	}
	signer := sig.PublicKey.Marshal()
	limited := false
	for _, tk := range t {
		if !bytes.Equal(tk.Key.Marshal(), signer) {
			continue
		}
		if !tk.allows(namespace, time.Now()) {
			limited = true
			continue
		}
		if err := sshsig.Verify(bytes.NewReader(data), sig, tk.Key, sig.HashAlgorithm, namespace); err != nil {
			return "", fmt.Errorf("the signature by %s does not match: %w", ssh.FingerprintSHA256(tk.Key), err)
		}
		return ssh.FingerprintSHA256(tk.Key), nil
	}
	if limited {
		return "", fmt.Errorf("%w: it is signed by %s, whose line limits it to other namespaces or another time", ErrUntrusted, ssh.FingerprintSHA256(sig.PublicKey))
	}
	return "", fmt.Errorf("%w: it is signed by %s", ErrUntrusted, ssh.FingerprintSHA256(sig.PublicKey))
}
