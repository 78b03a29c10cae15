package egress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/dibvm/dibvm/host/sha256sum"
)

// Cache keeps, on the host, the downloads whose URL names their content
// for good: packages in a Debian-style pool and index files fetched by
// hash; rpm packages in a repository's package directory (a
// distribution never ships two builds under one
// name-version-release.arch) and an rpm-md repository's metadata files,
// which createrepo names by their checksum. A build that asks for one
// again gets it from the cache and sends nothing over the network.
//
// Nothing in the cache comes from the guest: it holds what the upstream
// server sent for a URL, and apt and debootstrap in the guest check every
// file against the archive's signed indexes as before, so a cache can
// save downloads but cannot make a build accept anything.
//
// The guest chooses the URLs, so what one build may add to the cache is
// bounded (maxCacheAdd): past it, downloads pass through uncached.
type Cache struct {
	Dir string

	added atomic.Int64 // bytes written to the cache by this run
}

// maxCacheAdd bounds what one run adds to the cache: more than a full
// build's packages, far less than a disk.
const maxCacheAdd = 8 << 30

// cacheable reports whether the file at u never changes. A URL with
// credentials in it is never kept: the file may be one that only they
// open, and the cache's key does not hold them.
func cacheable(u *url.URL) bool {
	// Credentials in the user part or the query (a token, a presigned
	// URL) are the requester's: the file is not kept, and so never
	// served to a build that has no such credentials. The cache keys
	// files by host and path alone.
	if u.User != nil || u.RawQuery != "" || u.ForceQuery {
		return false
	}
	p := u.Path
	switch {
	case strings.Contains(p, "/by-hash/SHA256/"), rpmMetadata.MatchString(p):
		return true
	case rpmPackage.MatchString(p) && !strings.Contains(path.Base(p), "latest"):
		return true
	}
	return strings.Contains(p, "/pool/") && (strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".udeb"))
}

// rpmMetadata is a metadata file of an rpm-md repository named by its
// SHA-256 (createrepo's unique file names); repomd.xml, which names them,
// changes, and is never kept.
var rpmMetadata = regexp.MustCompile(`/repodata/[0-9a-f]{64}-[^/]+$`)

// rpmPackage is an rpm in a repository: under Packages/ (Fedora, CentOS
// and their kin) or in a directory named for its architecture
// (openSUSE). An rpm elsewhere, and one whose name says "latest"
// (epel-release-latest-9.noarch.rpm), may be replaced under its name.
var rpmPackage = regexp.MustCompile(`/(Packages(/[^/]+)?|x86_64|aarch64|noarch|i686|ppc64le|s390x)/[^/]+\.rpm$`)

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+~-]`)

// file is where the cache keeps u: named by a hash of host and path, so
// that no URL can reach outside the directory, with the file's own name
// after it for people looking.
func (c *Cache) file(u *url.URL) string {
	base := unsafeName.ReplaceAllString(path.Base(u.Path), "_")
	return filepath.Join(c.Dir, hashName(u.Host+u.EscapedPath())+"_"+base)
}

// Open opens the file the cache keeps for the URL u.
func (c *Cache) Open(u string) (*os.File, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	return os.Open(c.file(parsed))
}

// serve answers a GET for a cacheable URL from the cache, or fetches it
// through fetch and keeps a complete 200 response; a nil Cache keeps
// nothing. served, if set, hears of a file sent whole.
func (c *Cache) serve(conn net.Conn, req *http.Request, fetch func(*http.Request) (*http.Response, error), served func(string, int64, string)) {
	var name string
	if c != nil {
		name = c.file(req.URL)
	}
	if f, err := os.Open(name); name != "" && err == nil {
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nX-Dibvm-Cache: hit\r\nConnection: close\r\n\r\n", fi.Size())
			h := sha256.New()
			if n, err := io.Copy(io.MultiWriter(conn, h), f); err == nil && n == fi.Size() && served != nil {
				served(req.URL.String(), n, hex.EncodeToString(h.Sum(nil)))
			}
			return
		}
	}
	out, err := http.NewRequestWithContext(req.Context(), http.MethodGet, req.URL.String(), nil)
	if err != nil {
		writeError(conn, http.StatusBadRequest, err.Error())
		return
	}
	out.Header.Set("User-Agent", req.UserAgent())
	resp, err := fetch(out)
	if err != nil {
		refuse(conn, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		resp.Close = true
		resp.Write(conn)
		return
	}
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n")
	if resp.ContentLength >= 0 {
		fmt.Fprintf(conn, "Content-Length: %d\r\n", resp.ContentLength)
	}
	io.WriteString(conn, "Connection: close\r\n\r\n")
	h := sha256.New()
	n, err := c.store(name, resp, io.MultiWriter(conn, h))
	if err == nil && (resp.ContentLength < 0 || n == resp.ContentLength) && served != nil {
		served(req.URL.String(), n, hex.EncodeToString(h.Sum(nil)))
	}
}

// store copies the body to conn and into the cache, keeping it only when
// it arrived whole. Two builds storing the same file each write their
// own temporary file, and the rename makes either one the entry. It
// returns what it copied to conn.
func (c *Cache) store(name string, resp *http.Response, conn io.Writer) (int64, error) {
	if c == nil {
		return io.Copy(conn, resp.Body)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return io.Copy(conn, resp.Body)
	}
	tmp, err := os.CreateTemp(c.Dir, ".download-*")
	if err != nil {
		return io.Copy(conn, resp.Body)
	}
	defer os.Remove(tmp.Name())
	tee := &cacheTee{conn: conn, tmp: tmp, cache: c}
	n, err := io.Copy(tee, resp.Body)
	if cerr := tmp.Close(); err == nil && cerr == nil && !tee.dropped && (resp.ContentLength < 0 || n == resp.ContentLength) {
		os.Rename(tmp.Name(), name)
	}
	return n, err
}

// cacheTee sends a download to the guest and, while the run's budget
// lasts, into the cache's temporary file.
type cacheTee struct {
	conn    io.Writer
	tmp     *os.File
	cache   *Cache
	dropped bool // the file will not be kept
}

func (t *cacheTee) Write(p []byte) (int, error) {
	n, err := t.conn.Write(p)
	if err != nil {
		return n, err
	}
	if !t.dropped {
		if t.cache.added.Add(int64(len(p))) > maxCacheAdd {
			t.dropped = true
		} else if _, err := t.tmp.Write(p); err != nil {
			t.dropped = true
		}
	}
	return n, nil
}

// New makes a proxy that serves no guest, for its Fetch alone: the host
// gets a file as the guest's GET would get it, under o's policy and
// through o's cache. It has nothing to close.
func New(o Options) (*Proxy, error) {
	if o.Pins != nil && o.Cache == nil {
		return nil, errPinsNeedCache
	}
	own, err := HostAddrs()
	if err != nil {
		return nil, err
	}
	p := newProxy(nil, o)
	p.own = own
	return p, nil
}

// Fetch gets u for a Service as the guest's own GET would get it:
// through the policy's dial, and from the cache when u names its content
// for good, keeping it there when it was not yet. With sum, the SHA256
// the caller will check it against, a file is kept only if it matches,
// and a cached one that does not is removed and fetched again. A server
// that sends nothing for two minutes fails the fetch.
func (p *Proxy) Fetch(ctx context.Context, u, sum string) (io.ReadCloser, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if p.locked(parsed) || p.recordsReleases(parsed) {
		body, _, err := p.getRecorded(ctx, parsed)
		return body, err
	}
	body, size, err := p.fetch(ctx, u, parsed, sum)
	if err != nil || p.served == nil || !cacheable(parsed) {
		return body, err
	}
	return &recorder{ReadCloser: body, url: u, size: size, hash: sha256.New(), served: p.served}, nil
}

// fetch is Fetch's download, with its size where it is known (else -1).
func (p *Proxy) fetch(ctx context.Context, u string, parsed *url.URL, sum string) (io.ReadCloser, int64, error) {
	keep := p.cache != nil && cacheable(parsed)
	var name string
	if keep {
		// What is kept is served only where the fetch would be allowed.
		if _, err := p.destination(ctx, hostPort(parsed)); err != nil {
			return nil, 0, err
		}
		name = p.cache.file(parsed)
		if f, err := os.Open(name); err == nil {
			if sum == "" || fileSum(f) == sum {
				size := int64(-1)
				if info, err := f.Stat(); err == nil {
					size = info.Size()
				}
				return f, size, nil
			}
			f.Close()
			os.Remove(name)
		}
	}
	resp, err := p.get(ctx, u) // given up when the server stalls
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if !keep {
		return resp.Body, resp.ContentLength, nil
	}
	if err := os.MkdirAll(p.cache.Dir, 0o755); err != nil {
		return resp.Body, resp.ContentLength, nil
	}
	tmp, err := os.CreateTemp(p.cache.Dir, ".download-*")
	if err != nil {
		return resp.Body, resp.ContentLength, nil
	}
	return &keeper{body: resp.Body, size: resp.ContentLength, sum: sum, hash: sha256.New(),
		tee: &cacheTee{conn: io.Discard, tmp: tmp, cache: p.cache}, name: name}, resp.ContentLength, nil
}

// fileSum is the SHA256 of what is left of f, which it then rewinds.
func fileSum(f *os.File) string {
	sum, _, err := sha256sum.Reader(f)
	if err != nil {
		return ""
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ""
	}
	return sum
}

// keeper reads a download for a service and keeps it in the cache once
// it was read whole (and matched its sum, if it has one).
type keeper struct {
	body io.ReadCloser
	size int64
	n    int64
	sum  string
	hash hash.Hash
	tee  *cacheTee
	name string
	done bool
}

func (k *keeper) Read(b []byte) (int, error) {
	n, err := k.body.Read(b)
	if n > 0 {
		k.tee.Write(b[:n])
		k.hash.Write(b[:n])
		k.n += int64(n)
	}
	if err == io.EOF && !k.done {
		k.done = true
		whole := k.size < 0 || k.n == k.size
		matches := k.sum == "" || hex.EncodeToString(k.hash.Sum(nil)) == k.sum
		if cerr := k.tee.tmp.Close(); cerr == nil && !k.tee.dropped && whole && matches {
			os.Rename(k.tee.tmp.Name(), k.name)
		}
		os.Remove(k.tee.tmp.Name())
	}
	return n, err
}

func (k *keeper) Close() error {
	if !k.done {
		k.done = true
		k.tee.tmp.Close()
		os.Remove(k.tee.tmp.Name())
	}
	return k.body.Close()
}

// recorder tells served of a download read whole by a service.
type recorder struct {
	io.ReadCloser
	url    string
	size   int64 // -1 where not known
	n      int64
	hash   hash.Hash
	served func(url string, size int64, sha256 string)
	done   bool
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.hash.Write(b[:n])
	r.n += int64(n)
	if err == io.EOF && !r.done && (r.size < 0 || r.n == r.size) {
		r.done = true
		r.served(r.url, r.n, hex.EncodeToString(r.hash.Sum(nil)))
	}
	return n, err
}
