// Package lockfile is a build's lock file, IMAGE.lock beside its
// outputs: each package its image has installed, as the image's package
// database names it, with the file it was installed from: that file's
// URL, size and SHA-256, and the archive and suite it came from.
//
// The two halves come from different places, and neither trusts the
// other. The guest lists what dpkg or rpm says is installed (see
// guestagent/pkgdb); the host's egress proxy saw what was downloaded
// (see egress.Options.Served) and computed its digest itself. A package
// is joined to a download by the file name its archive gives it, and to
// a suite by the Packages index that lists that file.
package lockfile

import (
	"encoding/json"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Format names this lock file's layout.
const Format = "dibvm-lock/1"

// A Lock is what a build installed.
type Lock struct {
	Format   string    `json:"format"`
	Packages []Package `json:"packages"`
	// Releases are the Debian suites' release files (InRelease) the
	// build read its indexes from: a replay of the lock serves them as
	// they were, so that apt chooses what it chose.
	Releases []Release `json:"releases,omitempty"`
	// Superseded are the package files the build downloaded that no
	// installed package came from: a version an upgrade later in the
	// build replaced (debootstrap installs the suite's, apt then the
	// security update's), or one fetched and not installed. A replay
	// downloads them again, so the lock pins them too.
	Superseded []Download `json:"superseded,omitempty"`
}

// MaxReleases bounds the release files a lock carries, and
// MaxReleaseContent the bytes of their content: a build reads a few
// suites, of some 300 KiB each at most, and the guest chooses what it
// fetches.
const (
	MaxReleases       = 64
	MaxReleaseContent = 16 << 20
)

// A Release is a suite's release file, with its content where the build
// kept it: the archive replaces it within days, and it is signed, so a
// replay can take it from the lock as apt would from the archive.
type Release struct {
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Content []byte `json:"content,omitempty"`
}

// A Package is one installed package and, where the build downloaded
// it, that download. A package with no URL came another way: over
// HTTPS (which the proxy passes through unread), from a file a hook
// brought, or in a resumed build from a checkpoint made before its
// downloads were recorded.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"architecture"`
	URL     string `json:"url,omitempty"`
	Size    int64  `json:"size,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Archive is the repository's URL: a Debian archive's, before
	// pool/, or an rpm repository's, before Packages/.
	Archive string `json:"archive,omitempty"`
	// Suite is the Debian suite (dists/SUITE) whose Packages index
	// listed the file, where the build read one from the cache.
	Suite string `json:"suite,omitempty"`
}

// Recorded says how many packages came with their download.
func (l *Lock) Recorded() int {
	n := 0
	for _, p := range l.Packages {
		if p.URL != "" {
			n++
		}
	}
	return n
}

// Marshal is the lock file's bytes.
func (l *Lock) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(l, "", "  ")
	return append(b, '\n'), err
}

// A Download is a file the egress proxy sent whole, and for a package
// file, the suite whose Packages index listed it (see Recorder.Open).
type Download struct {
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Suite  string `json:"suite,omitempty"`
}

// maxDownloads bounds what a Recorder keeps: many times the packages of
// any image.
const maxDownloads = 50000

// A Recorder collects a build's downloads as the proxy serves them. A
// nil Recorder records nothing.
type Recorder struct {
	// Open, when set, opens a download as the build got it, by its URL
	// and SHA-256: the Packages indexes the suites are read from. What
	// it gives is read only if it has that SHA-256.
	Open func(url, sha256 string) (io.ReadCloser, error)

	mu  sync.Mutex
	got map[string]Download

	// resolving is held while the suites are read, outside mu: Open
	// may fetch an index, and the proxy's Served must not wait for it.
	resolving sync.Mutex
	seen      map[string]int // the indexes read, to the packages then downloaded
}

// Served records a download; it is the proxy's egress.Options.Served.
func (r *Recorder) Served(u string, size int64, sha256 string) {
	r.Add([]Download{{URL: u, Size: size, SHA256: sha256}})
}

// Add records ds: those a checkpoint carried from the build that made it.
func (r *Recorder) Add(ds []Download) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]Download{}
	}
	for _, d := range ds {
		if len(r.got) < maxDownloads {
			r.got[d.URL] = d
		}
	}
}

// Downloads are those recorded so far, in order of URL, each package
// file with its suite where an index read so far lists it. What it
// records goes into checkpoints: a build that resumes from one may not
// have the indexes in its own cache.
func (r *Recorder) Downloads() []Download {
	if r == nil {
		return nil
	}
	r.resolving.Lock()
	defer r.resolving.Unlock()
	r.mu.Lock()
	out := make([]Download, 0, len(r.got))
	for _, d := range r.got {
		out = append(out, d)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Download) int { return strings.Compare(a.URL, b.URL) })
	if r.Open != nil {
		r.resolve(out)
		r.mu.Lock()
		for _, d := range out {
			if was, ok := r.got[d.URL]; ok && was.SHA256 == d.SHA256 && was.Suite == "" {
				r.got[d.URL] = d
			}
		}
		r.mu.Unlock()
	}
	return out
}

// Make joins installed, the image's packages, with downloads.
func Make(installed []api.Package, downloads []Download) *Lock {
	// A file name downloaded twice as different bytes (from two
	// archives, or a decoy the guest fetched from elsewhere) says
	// nothing sure of where the package came from: it stands unrecorded.
	byName := map[string]Download{}
	ambiguous := map[string]bool{}
	for _, d := range downloads {
		name := fileName(d.URL)
		if name == "" {
			continue
		}
		if was, ok := byName[name]; ok && was.SHA256 != d.SHA256 {
			ambiguous[name] = true
		} else if !ok {
			byName[name] = d // downloads come in order of URL
		}
	}
	for name := range ambiguous {
		delete(byName, name)
	}
	joined := map[string]bool{}
	l := &Lock{Format: Format, Packages: []Package{}}
	for _, d := range downloads {
		if releaseFile.MatchString(d.URL) && len(l.Releases) < MaxReleases {
			l.Releases = append(l.Releases, Release{URL: d.URL, Size: d.Size, SHA256: d.SHA256})
		}
	}
	installed = slices.Clone(installed)
	api.SortPackages(installed)
	for _, p := range installed {
		lp := Package{Name: p.Name, Version: p.Version, Arch: p.Arch}
		for _, name := range packageFiles(p) {
			if d, ok := byName[name]; ok {
				joined[d.URL] = true
				lp.URL, lp.Size, lp.SHA256 = d.URL, d.Size, d.SHA256
				lp.Archive = archive(d.URL)
				lp.Suite = d.Suite
				break
			}
		}
		l.Packages = append(l.Packages, lp)
	}
	for _, d := range downloads {
		if fileName(d.URL) != "" && !joined[d.URL] {
			l.Superseded = append(l.Superseded, d)
		}
	}
	return l
}

// fileName is the package file's name at u, unescaped ("%3a" is how
// archives write an epoch's colon, where they keep one), or "" for a
// URL that is no package's.
func fileName(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return ""
	}
	name := path.Base(parsed.Path)
	for _, ext := range []string{".deb", ".udeb", ".rpm"} {
		if strings.HasSuffix(name, ext) {
			return name
		}
	}
	return ""
}

// unescaped is u with its path unescaped, as a Packages index writes a
// file's name: apt asks for "a%2bb_1_all.deb" where the index says
// "a+b_1_all.deb".
func unescaped(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	return parsed.Scheme + "://" + parsed.Host + parsed.Path
}

// packageFiles are the names p's file has in an archive: Debian's pool
// drops the epoch (name_version_arch.deb); rpm's files are
// name-version-release.arch.rpm, the epoch never in them.
func packageFiles(p api.Package) []string {
	v := p.Version
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	return []string{
		p.Name + "_" + v + "_" + p.Arch + ".deb",
		p.Name + "_" + v + "_" + p.Arch + ".udeb",
		p.Name + "_" + p.Version + "_" + p.Arch + ".deb", // a pool that keeps the epoch
		p.Name + "-" + v + "." + p.Arch + ".rpm",
	}
}

// archive is the repository a package file at u is in: a Debian
// archive's root, before /pool/; an rpm repository's, before
// /Packages/ or, where there is none, the file's directory.
func archive(u string) string {
	for _, dir := range []string{"/pool/", "/Packages/"} {
		if i := strings.LastIndex(u, dir); i >= 0 {
			return u[:i]
		}
	}
	if i := strings.LastIndex(u, "/"); i > 0 {
		return u[:i]
	}
	return u
}
