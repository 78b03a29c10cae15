package egress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/dibvm/dibvm/host/sha256sum"
)

// This file is what the proxy does with the files a lock file names:
// the suites' release files, which it records as it records packages,
// and, for a build that replays a lock (Options.Pins), every package and
// release file, held to the SHA-256 the lock gives it.

// releaseFile is a Debian suite's release file. It changes as the
// archive does, so it is no cacheable file; but it is what decides every
// other file a build gets (its indexes name the packages, by hash), and
// a lock file keeps it to replay the suite as the build saw it.
var releaseFile = regexp.MustCompile(`/dists/[^/]+/(InRelease|Release|Release\.gpg)$`)

// maxRelease bounds a release file: Debian's and Ubuntu's largest are
// some 300 KiB.
const maxRelease = 4 << 20

// Pinnable reports whether the file at u is one a lock file pins: a
// package file or a suite's release file.
func Pinnable(u *url.URL) bool {
	return releaseFile.MatchString(u.Path) || packageFile.MatchString(u.Path)
}

var packageFile = regexp.MustCompile(`\.(deb|udeb|rpm)$`)

// recordsReleases says whether the proxy serves release files itself:
// to record them, or to replay them.
func (p *Proxy) recordsReleases(u *url.URL) bool {
	return (p.served != nil || p.pins != nil) && p.cache != nil && releaseFile.MatchString(u.Path) && u.User == nil && u.RawQuery == ""
}

// locked says whether a GET of u is answered from the lock file: every
// package and release file, when replaying one. One asked for with
// credentials or a query is refused (see getRecorded): the lock names
// no such file.
func (p *Proxy) locked(u *url.URL) bool {
	return p.pins != nil && p.cache != nil && Pinnable(u)
}

// serveRecorded answers a GET of a release file or, replaying a lock, of
// a pinned file (see getRecorded): in full, whatever the request's
// conditions, so that the build sees and records the whole file.
func (p *Proxy) serveRecorded(conn net.Conn, req *http.Request) {
	if p.pins == nil {
		p.serveRelease(conn, req)
		return
	}
	var body io.ReadCloser
	var size int64
	err := error(notInLock{refusal{errors.New("asked for with credentials, which no file of a lock file has")}})
	if req.Header.Get("Authorization") == "" {
		body, size, err = p.getRecorded(req.Context(), req.URL)
	}
	if err != nil {
		msg := fmt.Sprintf("dibvm: %s: %v", req.URL, err)
		p.notice(msg, msg)
		code := statusOf(err)
		if errors.As(err, new(notInLock)) && releaseFile.MatchString(req.URL.Path) {
			// A suite the build that wrote the lock did not have (apt
			// then asks for Release, as it did): it has none now.
			code = http.StatusNotFound
		}
		writeError(conn, code, msg)
		return
	}
	defer body.Close()
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
	io.Copy(conn, body)
}

// getRecorded gets u, a release file or a pinned one, and tells Served.
// Replaying a lock, the file is the one the lock names by SHA-256: from
// the cache (as a checked object, or as the download kept under its
// URL) or fetched and checked whole before a byte of it is served. Else
// a release file is fetched whole and kept as a checked object, which a
// later replay of this build's lock serves.
func (p *Proxy) getRecorded(ctx context.Context, u *url.URL) (io.ReadCloser, int64, error) {
	if p.offline {
		if err := p.mayFetchOffline(u.String()); err != nil {
			return nil, 0, err
		}
	} else if _, err := p.destination(ctx, hostPort(u)); err != nil {
		return nil, 0, err
	}
	if p.pins != nil && (u.User != nil || u.RawQuery != "" || u.ForceQuery) {
		return nil, 0, notInLock{refusal{errors.New("asked for with credentials or a query, which no file of a lock file has")}}
	}
	if p.pins == nil {
		data, err := p.fetchRelease(ctx, u.String())
		if err != nil {
			return nil, 0, err
		}
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		p.cache.keepObject(data)
		p.tell(u, int64(len(data)), want)
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
	want, err := p.pins(u)
	if err != nil {
		return nil, 0, notInLock{refusal{err}}
	}
	if f, n, err := openChecked(p.cache.object(want), want); err == nil {
		p.tell(u, n, want)
		return f, n, nil
	}
	if cacheable(u) {
		// Kept under its URL by a build that did not replay a lock: used
		// if it is the lock's file, and left for others if not.
		if f, n, ok := openMatching(p.cache.file(u), want); ok {
			p.tell(u, n, want)
			return f, n, nil
		}
	}
	if p.offline {
		return nil, 0, refusal{fmt.Errorf("offline, and the file the lock names (SHA256 %s) is not in the image cache", want)}
	}
	f, n, err := p.fetchChecked(ctx, u.String(), u.Path, p.cache.object(want), want, "the lock file")
	if err != nil {
		return nil, 0, err
	}
	p.tell(u, n, want)
	return f, n, nil
}

// ReadObject is the file of SHA-256 sum that c keeps by its content (a
// release file the proxy recorded), checked, if it is no larger than a
// release file.
func (c *Cache) ReadObject(sum string) ([]byte, error) {
	f, n, err := openChecked(c.object(sum), sum)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if n > maxRelease {
		return nil, fmt.Errorf("%s: larger than a release file", sum)
	}
	return io.ReadAll(f)
}

// WriteObject keeps data in c by its content, for the proxy to serve
// where a lock file pins its SHA-256.
func (c *Cache) WriteObject(data []byte) error {
	sum := sha256.Sum256(data)
	name := c.object(hex.EncodeToString(sum[:]))
	if !fileMissing(name) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return writeAtomic(name, data)
}

// keepObject is WriteObject within the run's budget for the cache (see
// maxCacheAdd): the guest chooses what it fetches.
func (c *Cache) keepObject(data []byte) {
	if c.added.Add(int64(len(data))) <= maxCacheAdd {
		c.WriteObject(data)
	}
}

// openMatching opens name if its SHA-256 is want, and leaves it be if
// not.
func openMatching(name, want string) (*os.File, int64, bool) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, false
	}
	sum, n, err := sha256sum.Reader(f)
	if err != nil || sum != want {
		f.Close()
		return nil, 0, false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, false
	}
	return f, n, true
}

// Has reports whether c holds a file a lock file pins, by its SHA-256 or
// under its URL; what it holds is checked when it is served.
func (c *Cache) Has(u, sum string) bool {
	if !fileMissing(c.object(sum)) {
		return true
	}
	parsed, err := url.Parse(u)
	return err == nil && cacheable(parsed) && !fileMissing(c.file(parsed))
}

// notInLock is a file the lock does not name: a refusal.
type notInLock struct{ refusal }

func (n notInLock) Unwrap() error { return n.refusal }

// serveRelease answers a GET of a release file when recording: fetched
// whole, kept by its content in the cache, told to Served and sent in
// full whatever the request's conditions; an answer other than 200 (a
// suite the archive has not) is passed on as it came.
func (p *Proxy) serveRelease(conn net.Conn, req *http.Request) {
	ctx := req.Context()
	if _, err := p.destination(ctx, hostPort(req.URL)); err != nil {
		refuse(conn, err)
		return
	}
	resp, err := p.get(ctx, req.URL.String())
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRelease+1))
	if err == nil && len(data) > maxRelease {
		err = fmt.Errorf("a release file larger than %d MiB", maxRelease>>20)
	}
	if err != nil {
		writeError(conn, http.StatusBadGateway, fmt.Sprintf("dibvm: %s: %v", req.URL, err))
		return
	}
	sum := sha256.Sum256(data)
	p.cache.keepObject(data)
	p.tell(req.URL, int64(len(data)), hex.EncodeToString(sum[:]))
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(data))
	conn.Write(data)
}

// tell tells Served of a file sent whole.
func (p *Proxy) tell(u *url.URL, size int64, sum string) {
	if p.served != nil {
		p.served(u.String(), size, sum)
	}
}

// fetchRelease downloads a release file whole.
func (p *Proxy) fetchRelease(ctx context.Context, u string) ([]byte, error) {
	resp, err := p.get(ctx, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server says %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRelease+1))
	if err == nil && len(data) > maxRelease {
		err = fmt.Errorf("a release file larger than %d MiB", maxRelease>>20)
	}
	return data, err
}

func fileMissing(name string) bool {
	_, err := os.Stat(name)
	return err != nil
}
