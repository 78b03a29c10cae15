// Package hostpath lends files and directories of the host to a build.
//
// DIB's hooks that run outside the chroot read the host: a setting names
// a file or directory there (DIB_APT_CONF, DIB_ADD_APT_KEYS, a local
// checkout in DIB_REPOLOCATION_<name>) and the hook copies from it.
// dibvm's hooks run in the helper VM, where the host's paths mean
// nothing, so the host reads what the variable names, and only that, and
// packs it as a tar for the input disk; the guest unpacks it under
// api.LentDir, mounts it read-only, and the variable points at the copy.
//
// A directory is read through an os.Root opened on it: a symlink that
// leads out of it is refused (as in element trees, see
// elements.SymlinkEscape), and so are pipes, sockets and devices. What a
// build borrows is bounded in bytes and entries, since the input disk is
// made in memory.
package hostpath

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Kind is what a variable may name: a file, a directory, or either.
type Kind int

const (
	File Kind = 1 << iota
	Dir
	FileOrDir = File | Dir
)

func (k Kind) String() string {
	switch k {
	case File:
		return "a file"
	case Dir:
		return "a directory"
	}
	return "a file or directory"
}

// Limits bound everything one build borrows, all loans together.
type Limits struct {
	Bytes   int64 // the files' sizes
	Entries int   // files, directories and symlinks
}

// DefaultLimits are what a build may borrow: settings name configuration
// files, keys and small trees; a large image is lent as a disk instead
// (DIB_LOCAL_IMAGE), and large data is better fetched by a hook.
var DefaultLimits = Limits{Bytes: 512 << 20, Entries: 50000}

// A Loan is what one variable lends: its host paths packed for the guest.
type Loan struct {
	Var   string   // the variable the hooks read
	Paths []string // the host paths it names, absolute, in its order
	// Input is the tar's name on the input disk; the guest unpacks it
	// into api.LentDir/Input.
	Input string
	Tar   []byte
	// Value is the variable's value in the guest: the copies' paths, in
	// the order of Paths, space separated. Each copy keeps its host base
	// name, which hooks may use (yum's cleanup removes
	// yum.repos.d/$(basename $file)).
	Value string
	// Digest is the SHA-256 of Tar, in hex: what the loan adds to a
	// checkpoint's key (names, modes and contents; not the host path).
	Digest string
}

// Lender gathers a build's loans, within its Limits.
type Lender struct {
	Limits  Limits
	loans   []*Loan
	bytes   int64
	entries int
}

// NewLender is a Lender with DefaultLimits.
func NewLender() *Lender { return &Lender{Limits: DefaultLimits} }

// Lend lends the build the host paths under variable: each path must be
// of a kind that kind allows, and is read now, so that a setting that
// names nothing, or something unreadable or too large, fails before the
// VM boots. A relative path is taken from the working directory, as
// DIB's hooks take it. why says what the variable is for; every error
// names the variable, the path and why. The guest sets variable to the
// copies (Loan.Value), whatever the caller's environment says.
func (l *Lender) Lend(variable string, paths []string, kind Kind, why string) (*Loan, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s (%s): names no path", variable, why)
	}
	for _, prev := range l.loans {
		if prev.Var == variable {
			return nil, fmt.Errorf("%s (%s): lent twice", variable, why)
		}
	}
	loan := &Loan{Var: variable, Input: fmt.Sprintf("lent%d.tar", len(l.loans))}
	p := &packer{limits: l.Limits, bytes: l.bytes, entries: l.entries}
	p.tw = tar.NewWriter(&p.buf)
	var values []string
	for i, raw := range paths {
		abs, err := filepath.Abs(raw)
		if err == nil {
			err = p.add(fmt.Sprint(i), copyName(abs), abs, kind)
		}
		if err != nil && len(paths) > 1 {
			err = fmt.Errorf("%s: %w", raw, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%s (%s): %w", variable, strings.Join(paths, " "), why, err)
		}
		loan.Paths = append(loan.Paths, abs)
		values = append(values, path.Join(api.LentDir, loan.Input, fmt.Sprint(i), copyName(abs)))
	}
	if err := p.tw.Close(); err != nil {
		return nil, err
	}
	loan.Tar, loan.Value = p.buf.Bytes(), strings.Join(values, " ")
	sum := sha256.Sum256(loan.Tar)
	loan.Digest = hex.EncodeToString(sum[:])
	l.bytes, l.entries = p.bytes, p.entries
	l.loans = append(l.loans, loan)
	return loan, nil
}

// Loans are the loans made so far, in the order they were made.
func (l *Lender) Loans() []*Loan { return l.loans }

// copyName is the base name a copy of the host path abs keeps: its own,
// or "root" for the file system's root.
func copyName(abs string) string {
	if b := filepath.Base(abs); b != string(filepath.Separator) && b != "." {
		return b
	}
	return "root"
}

// packer writes host paths into a tar, counting against the limits.
type packer struct {
	limits  Limits
	bytes   int64
	entries int
	buf     bytes.Buffer
	tw      *tar.Writer
}
