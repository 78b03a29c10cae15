package lockfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// This file is a lock file read back, for a build that replays it
// (--packages-from): the files it pins, by their place in their archive.

// releaseFile is a Debian suite's release file, as the proxy records it
// (see egress.Pinnable).
var releaseFile = regexp.MustCompile(`/dists/[^/]+/(InRelease|Release|Release\.gpg)$`)

// maxLockSize bounds a lock file read: many times the largest image's.
const maxLockSize = 64 << 20

// Parse reads a lock file, refusing one that cannot be replayed: not
// this format, or with packages that have no file to pin them to (they
// came over HTTPS, or from a hook), which it lists.
func Parse(data []byte) (*Lock, error) {
	if len(data) > maxLockSize {
		return nil, fmt.Errorf("larger than %d MiB: not a lock file", maxLockSize>>20)
	}
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("not a lock file: %w", err)
	}
	if l.Format != Format {
		return nil, fmt.Errorf("format %q, want %q", l.Format, Format)
	}
	var unpinned []string
	for _, p := range l.Packages {
		if p.URL == "" || !isSHA256(p.SHA256) {
			unpinned = append(unpinned, p.Name+" "+p.Version)
			continue
		}
		if key(p.URL) == "" {
			return nil, fmt.Errorf("%s: URL %q is no package file's", p.Name, p.URL)
		}
	}
	for _, d := range l.Superseded {
		if key(d.URL) == "" || !isSHA256(d.SHA256) {
			return nil, fmt.Errorf("superseded download %q: want a package file's URL with its SHA-256", d.URL)
		}
	}
	for _, r := range l.Releases {
		if !releaseFile.MatchString(r.URL) || !isSHA256(r.SHA256) {
			return nil, fmt.Errorf("release file %q: want an archive's dists/SUITE/InRelease with its SHA-256", r.URL)
		}
		if sum := sha256.Sum256(r.Content); r.Content != nil && hex.EncodeToString(sum[:]) != r.SHA256 {
			return nil, fmt.Errorf("release file %q: its content is not the file of its SHA-256", r.URL)
		}
	}
	if len(unpinned) > 0 {
		const shown = 20
		list := unpinned[:min(len(unpinned), shown)]
		more := ""
		if len(unpinned) > shown {
			more = fmt.Sprintf(" and %d more", len(unpinned)-shown)
		}
		return nil, fmt.Errorf("%d packages have no file to pin them to (the build that wrote it did not download them over plain HTTP through dibvm's proxy): %s%s", len(unpinned), strings.Join(list, ", "), more)
	}
	return &l, nil
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && s == strings.ToLower(s)
}

// A File is one file a lock pins.
type File struct {
	URL    string
	SHA256 string
}

// Files are the files l pins, in its order.
func (l *Lock) Files() []File {
	var fs []File
	for _, p := range l.Packages {
		fs = append(fs, File{p.URL, p.SHA256})
	}
	for _, d := range l.Superseded {
		fs = append(fs, File{d.URL, d.SHA256})
	}
	for _, r := range l.Releases {
		fs = append(fs, File{r.URL, r.SHA256})
	}
	return fs
}

// pinned are the files a lock pins, by URL, and by their place in their
// archive (see key), which is the same on any mirror of it, a snapshot
// mirror too: a place two archives in the lock share with different
// files is had by URL alone.
type pinned struct {
	byURL map[string]string
	byKey map[string]string // "" where two files share it
}

func (l *Lock) pinned() pinned {
	ps := pinned{byURL: map[string]string{}, byKey: map[string]string{}}
	add := func(u, sum string) {
		ps.byURL[unescaped(u)] = sum
		k := key(u)
		if was, ok := ps.byKey[k]; ok && was != sum {
			sum = ""
		}
		ps.byKey[k] = sum
	}
	for _, f := range l.Files() {
		add(f.URL, f.SHA256)
	}
	return ps
}

// Pins is the proxy's egress.Options.Pins for a build that replays l,
// named for the user as name (the flag's value).
func (l *Lock) Pins(name string) func(*url.URL) (string, error) {
	ps := l.pinned()
	return func(u *url.URL) (string, error) {
		if sum, ok := ps.byURL[unescaped(u.String())]; ok {
			return sum, nil
		}
		if sum := ps.byKey[key(u.String())]; sum != "" {
			return sum, nil
		}
		return "", fmt.Errorf("not in the lock file %s (--packages-from): the build asks for what the build that wrote it did not get; see the lock's releases, and DIB_DISTRIBUTION_MIRROR for a snapshot mirror", name)
	}
}

// key is where a file at u is in its archive, the same on every mirror:
// a Debian archive's "dists/..." or "pool/..." path, an rpm's file name;
// "" for a URL that is neither.
func key(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return ""
	}
	p := parsed.Path
	if releaseFile.MatchString(p) {
		return p[strings.LastIndex(p, "/dists/")+1:]
	}
	if fileName(u) == "" {
		return ""
	}
	if i := strings.LastIndex(p, "/pool/"); i >= 0 {
		return p[i+1:]
	}
	return path.Base(p)
}
