// Package sourcecache keeps, in the host's image cache, what the
// source-repositories element fetched (git clones as bundles, tarballs
// and files), so that the next build starts from it and an offline build
// uses it alone, as DIB's clone cache under DIB_IMAGE_CACHE does.
//
// The guest's hooks cannot write the host's directory, so the element
// hands its cache over through the egress proxy (see egress.Service): a
// PUT of a key (api.SourceCacheKey) keeps the body as that file, a GET
// answers it. The host never reads what it keeps: the files are opaque
// to it, named only by keys of the pattern, bounded in size, and served
// back only to later builds' hooks, in their own VMs.
//
// What a hostile build can do with it is what a hostile element can do
// to DIB's shared cache: leave a clone with other refs for a later build
// of the same location. A build that fetches (not offline) takes the
// refs from the location itself, and git checks every object it takes
// from the cache by its name; an offline build, or a ref that names a
// commit, is as good as the cache.
package sourcecache

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Dir is where the cache is kept in an image cache: DIB's directory of
// its clones, where dibvm's files' suffixes keep them apart from DIB's.
const Dir = "source-repositories"

// Bounds of what one build may keep: sizes a large repository's bundle
// fits, and no more of the host's disk than that.
const (
	MaxFile  = 4 << 30
	MaxBuild = 8 << 30
)

var key = regexp.MustCompile(api.SourceCacheKey)

// Service is the cache in dir (made when first written) for one build:
// it keeps at most MaxBuild bytes of the build's, one PUT at a time.
func Service(dir string) func(*http.Request) *http.Response {
	sweep(dir, time.Now().Add(-staleAfter))
	s := &service{dir: dir}
	return s.serve
}

// staleAfter is when a file being kept is taken for one a killed dibvm
// left: no build writes one for that long.
const staleAfter = 24 * time.Hour

// sweep removes the files being kept that were last written before
// cutoff.
func sweep(dir string, cutoff time.Time) {
	left, _ := filepath.Glob(filepath.Join(dir, ".keep-*"))
	for _, f := range left {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			os.Remove(f)
		}
	}
}

type service struct {
	dir  string
	busy sync.Mutex
	mu   sync.Mutex
	kept int64 // bytes written this build
}

func (s *service) serve(req *http.Request) *http.Response {
	name, ok := strings.CutPrefix(req.URL.Path, api.SourceCachePath)
	if !ok || !key.MatchString(name) {
		return text(http.StatusNotFound, "want "+api.SourceCachePath+"KEY, KEY as "+api.SourceCacheKey)
	}
	switch req.Method {
	case http.MethodGet:
		return s.get(name)
	case http.MethodPut:
		if !s.busy.TryLock() {
			return text(http.StatusTooManyRequests, "another file is being kept")
		}
		defer s.busy.Unlock()
		if err := s.put(name, req.Body); err != nil {
			return text(http.StatusInsufficientStorage, err.Error())
		}
		return text(http.StatusCreated, "kept")
	}
	return text(http.StatusMethodNotAllowed, "GET or PUT only")
}

func (s *service) get(name string) *http.Response {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return text(http.StatusNotFound, "not in the cache")
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return text(http.StatusNotFound, "not in the cache")
	}
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Body: f, ContentLength: fi.Size(),
		Header: http.Header{"Content-Type": {"application/octet-stream"}}}
}

// put keeps body as name: written beside it and renamed into place
// whole, so that a build never finds half a file.
func (s *service) put(name string, body io.Reader) error {
	s.mu.Lock()
	left := min(MaxBuild-s.kept, MaxFile)
	s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".keep-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(body, left+1))
	s.mu.Lock()
	s.kept += n
	s.mu.Unlock()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > left {
		return fmt.Errorf("more than the %d MiB a build keeps in its source cache (at most %d MiB a file)", int64(MaxBuild)>>20, int64(MaxFile)>>20)
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, name))
}

func text(code int, msg string) *http.Response {
	body := msg + "\n"
	return &http.Response{StatusCode: code, ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Length": {strconv.Itoa(len(body))}},
		ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body))}
}
