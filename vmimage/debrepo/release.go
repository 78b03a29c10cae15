package debrepo

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/dibvm/dibvm/vmimage/debrepo/deb822"
)

// Release is the verified content of a suite's InRelease file.
type Release struct {
	Suite      string
	Codename   string
	Version    string
	Date       time.Time
	ValidUntil time.Time // zero when the file sets no Valid-Until
	Components []string
	// AcquireByHash: indexes are also served under by-hash/SHA256/<sum>.
	AcquireByHash bool
	// SHA256 maps a path relative to dists/<suite>/ to its expected sum.
	SHA256 map[string]FileSum
}

// FileSum is an expected size and SHA256 sum, as a hex string.
type FileSum struct {
	Size   int64
	SHA256 string
}

// VerifyRelease checks the clear-signed InRelease data against keyring and
// returns what the signature covers. It refuses a signature that does not
// verify, one made by a key outside keyring, and a file whose Valid-Until
// has passed at now. Only the signed text is parsed: anything around the
// signed block is ignored.
func VerifyRelease(data []byte, keyring openpgp.KeyRing, now time.Time) (*Release, error) {
	rel, err := VerifySignature(data, keyring, now)
	if err != nil {
		return nil, err
	}
	if !rel.ValidUntil.IsZero() && now.After(rel.ValidUntil) {
		return nil, fmt.Errorf("InRelease: expired: Valid-Until %s is in the past; the mirror is stale or the clock is wrong",
			rel.ValidUntil.Format(time.RFC1123))
	}
	return rel, nil
}

// VerifySignature is VerifyRelease without the Valid-Until check, as
// debootstrap takes a suite: a snapshot mirror's old InRelease is still
// good for it.
func VerifySignature(data []byte, keyring openpgp.KeyRing, now time.Time) (*Release, error) {
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, errors.New("InRelease: not a clear-signed OpenPGP message")
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	if _, err := block.VerifySignature(keyring, cfg); err != nil {
		return nil, fmt.Errorf("InRelease: bad signature: %w", describeSigError(err))
	}
	rel, err := parseRelease(block.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("InRelease: %w", err)
	}
	return rel, nil
}

func describeSigError(err error) error {
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return fmt.Errorf("signed by a key that is not a Debian archive key (%w)", err)
	}
	return err
}

// parseRelease reads the fields of a Release file that dibvm uses.
func parseRelease(text []byte) (*Release, error) {
	rel := &Release{SHA256: map[string]FileSum{}}
	var field string // the one continuation lines continue
	for f, err := range deb822.Fields(bytes.NewReader(text)) {
		if err != nil {
			return nil, err
		}
		// A Release file is one paragraph: lines that continue no field,
		// after an empty line, continue the one before it.
		if f.Text != "" {
			field = f.Name
			if err := rel.set(f.Name, strings.TrimSpace(f.Value)); err != nil {
				return nil, err
			}
		}
		if field != "SHA256" {
			continue
		}
		for _, line := range f.Continuation {
			if err := addSum(rel.SHA256, line); err != nil {
				return nil, err
			}
		}
	}
	if len(rel.SHA256) == 0 {
		return nil, errors.New("no SHA256 sums")
	}
	return rel, nil
}

// set records the value of the field called name, if dibvm uses it.
func (rel *Release) set(name, value string) error {
	switch name {
	case "Suite":
		rel.Suite = value
	case "Codename":
		rel.Codename = value
	case "Version":
		rel.Version = value
	case "Components":
		rel.Components = strings.Fields(value)
	case "Acquire-By-Hash":
		rel.AcquireByHash = value == "yes"
	case "Date", "Valid-Until":
		t, err := parseReleaseTime(value)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if name == "Date" {
			rel.Date = t
		} else {
			rel.ValidUntil = t
		}
	}
	return nil
}

func addSum(sums map[string]FileSum, line string) error {
	f := strings.Fields(line)
	if len(f) != 3 {
		return fmt.Errorf("malformed SHA256 line %q", line)
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return fmt.Errorf("malformed size in %q", line)
	}
	sums[f[2]] = FileSum{Size: size, SHA256: strings.ToLower(f[0])}
	return nil
}

func parseReleaseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}
