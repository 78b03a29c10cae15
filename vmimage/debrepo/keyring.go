package debrepo

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// The keys are Debian's archive signing keys as debian-archive-keyring
// ships them (binary OpenPGP keyrings). They are compiled in so that a
// host with no Debian tooling can still verify what it downloads.
//
//go:embed keys/*.gpg
var archiveKeys embed.FS

// DebianKeyring returns Debian's archive signing keys.
func DebianKeyring() (openpgp.EntityList, error) {
	files, err := fs.Glob(archiveKeys, "keys/*.gpg")
	if err != nil {
		return nil, err
	}
	var ring openpgp.EntityList
	for _, name := range files {
		data, err := archiveKeys.ReadFile(name)
		if err != nil {
			return nil, err
		}
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read embedded keyring %s: %w", name, err)
		}
		ring = append(ring, el...)
	}
	return ring, nil
}
