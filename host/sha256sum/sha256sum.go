// Package sha256sum gives the SHA-256 of a file's content, in hex as
// sha256sum(1) prints it: the digest by which dibvm names, keys and
// checks the files it keeps (checkpoint layers, cached downloads, the
// volumes it uploads) and the host's inputs to a build.
//
// Errors are those of opening and reading, unwrapped: they name the file
// already, and callers say what they were doing.
package sha256sum

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// File is the SHA-256 of the content of the file at path, and its size.
func File(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return Reader(f)
}

// Reader is the SHA-256 of what is left to read of r, and how many bytes
// that was. It reads r to its end; a caller that reads r again rewinds
// it.
func Reader(r io.Reader) (sum string, n int64, err error) {
	h := sha256.New()
	n, err = io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
