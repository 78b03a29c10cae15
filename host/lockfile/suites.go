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

// Bounds on reading the indexes, which the guest chooses: Debian's
// largest, main for amd64, is some 70 MiB unpacked, and a build reads a
// few.
const (
	maxIndexes   = 32
	maxIndexSize = 256 << 20
)

// resolve gives each package download in out that has no suite yet the
// suite of a Packages index among out that lists it. An index is read
// again only once packages were downloaded since it was last read; of
// it only the names of the packages still wanted are kept (an index may
// list millions of names), and only if it is still the file the build
// downloaded, by its SHA-256.
func (r *Recorder) resolve(out []Download) {
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	wanted := map[string]int{} // unescaped URL, to its place in out
	for i, d := range out {
		if d.Suite == "" && fileName(d.URL) != "" {
			wanted[unescaped(d.URL)] = i
		}
	}
	packages := len(wanted)
	for _, d := range out {
		m := packagesIndex.FindStringSubmatch(d.URL)
		if m == nil || len(wanted) == 0 {
			continue
		}
		if _, read := r.seen[d.URL]; !read && len(r.seen) == maxIndexes {
			continue
		}
		if r.seen[d.URL] == packages {
			continue // nothing new to look for since it was read
		}
		r.seen[d.URL] = packages
		root := unescaped(m[1]) + "/"
		found, ok := indexFiles(d, r.Open, func(name string) bool {
			_, want := wanted[root+name]
			return want
		})
		if !ok {
			continue
		}
		for _, name := range found {
			out[wanted[root+name]].Suite = m[2]
			delete(wanted, root+name)
		}
	}
}

// indexFiles reads the Filename of each entry of the index d that want
// takes, if open gives the bytes d was.
func indexFiles(d Download, open func(url, sha256 string) (io.ReadCloser, error), want func(string) bool) ([]string, bool) {
	rc, err := open(d.URL, d.SHA256)
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
		if name, ok := strings.CutPrefix(sc.Text(), "Filename:"); ok && want(strings.TrimSpace(name)) {
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
