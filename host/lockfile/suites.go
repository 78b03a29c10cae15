package lockfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"regexp"
	"strings"

	"github.com/ulikunitz/xz"
)

// packagesIndex is a Debian archive's Packages index at a URL, compressed
// or not, by name or by hash: the archive's root and the suite.
var packagesIndex = regexp.MustCompile(`^(.+)/dists/([^/]+)/(?:[^/]+/)+binary-[^/]+/(?:by-hash/SHA256/[0-9a-f]{64}|Packages(?:\.xz|\.gz)?)$`)

// Bounds on reading the indexes: Debian's largest, main for amd64, is
// some 70 MiB unpacked.
const (
	maxIndexes   = 64
	maxIndexSize = 512 << 20
)

// readIndexes reads into r.suites each Packages index among downloads
// not read yet, if r.Open still gives the bytes the build downloaded
// (by SHA-256); each file an index lists maps to its suite.
func (r *Recorder) readIndexes(downloads []Download) {
	if r.suites == nil {
		r.suites, r.read = map[string]string{}, map[string]bool{}
	}
	for _, d := range downloads {
		m := packagesIndex.FindStringSubmatch(d.URL)
		if m == nil || r.read[d.URL] || len(r.read) == maxIndexes {
			continue
		}
		r.read[d.URL] = true
		files, ok := indexFiles(d, r.Open)
		if !ok {
			continue
		}
		for _, f := range files {
			u := unescaped(m[1]) + "/" + f
			if _, seen := r.suites[u]; !seen {
				r.suites[u] = m[2]
			}
		}
	}
}

// indexFiles reads the Filename of each entry of the index d, if open
// gives the bytes d was.
func indexFiles(d Download, open func(string) (io.ReadCloser, error)) ([]string, bool) {
	rc, err := open(d.URL)
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	h := sha256.New()
	br := bufio.NewReader(io.TeeReader(io.LimitReader(rc, maxIndexSize), h))
	r, err := unpacked(br)
	if err != nil {
		return nil, false
	}
	var files []string
	sc := bufio.NewScanner(io.LimitReader(r, maxIndexSize))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "Filename:"); ok {
			files = append(files, strings.TrimSpace(name))
		}
	}
	if sc.Err() != nil {
		return nil, false
	}
	io.Copy(io.Discard, br) // the rest, for the digest
	return files, hex.EncodeToString(h.Sum(nil)) == d.SHA256
}

// unpacked is r's index, by its compression's magic number: an index
// fetched by hash has no name to say it.
func unpacked(r *bufio.Reader) (io.Reader, error) {
	magic, _ := r.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return xz.NewReader(r)
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(r)
	}
	return r, nil
}
