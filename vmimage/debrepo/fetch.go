package debrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ulikunitz/xz"
)

// DefaultMirror is used when no mirror is configured.
const DefaultMirror = "http://deb.debian.org/debian"

// Repo is one suite, component and architecture of a Debian mirror.
type Repo struct {
	Mirror    string // e.g. http://deb.debian.org/debian
	Suite     string // e.g. stable, trixie
	Component string // e.g. main
	Arch      string // Debian architecture name, e.g. amd64

	Keyring openpgp.KeyRing
	Client  *http.Client
	// CacheDir, when set, keeps downloaded files named by their SHA256 so
	// that a verified file is never downloaded twice.
	CacheDir string
	// Now returns the time used to check signatures and Valid-Until.
	Now func() time.Time
}

// Release downloads and verifies the suite's InRelease.
func (r *Repo) Release(ctx context.Context) (*Release, error) {
	u := r.url("dists", r.Suite, "InRelease")
	data, err := r.get(ctx, u, 16<<20)
	if err != nil {
		return nil, err
	}
	rel, err := VerifyRelease(data, r.Keyring, r.now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return rel, nil
}

// Index downloads the Packages index that rel vouches for and parses it.
func (r *Repo) Index(ctx context.Context, rel *Release) (*Index, error) {
	name := path.Join(r.Component, "binary-"+r.Arch, "Packages.xz")
	sum, ok := rel.SHA256[name]
	if !ok {
		return nil, fmt.Errorf("InRelease of %s lists no %s: is %q a valid component and architecture?", r.Suite, name, r.Component+"/"+r.Arch)
	}
	file, err := r.download(ctx, r.url("dists", r.Suite, name), "Packages.xz", sum, "InRelease")
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ulikunitz/xz reads byte by byte: without a buffer it is 15x slower.
	zr, err := xz.NewReader(bufioReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	idx, err := ParseIndex(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return idx, nil
}

// Fetch downloads p's .deb, checks it against the index, and returns the
// path of the verified file.
func (r *Repo) Fetch(ctx context.Context, p *Package) (string, error) {
	return r.download(ctx, r.url(p.Filename), path.Base(p.Filename), FileSum{Size: p.Size, SHA256: p.SHA256}, "Packages")
}

// download fetches u into the cache (or a temporary file when there is no
// cache) and refuses it unless its size and SHA256 are as want says.
// voucher names the file that promised want, for the error message.
func (r *Repo) download(ctx context.Context, u, name string, want FileSum, voucher string) (string, error) {
	dir := r.CacheDir
	if dir == "" {
		dir = os.TempDir()
	}
	final := filepath.Join(dir, want.SHA256+"-"+name)
	if r.CacheDir != "" {
		if _, err := os.Stat(final); err == nil {
			return final, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	body, err := r.open(ctx, u)
	if err != nil {
		return "", err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want.SHA256 || (want.Size > 0 && n != want.Size) {
		return "", &HashMismatchError{File: name, URL: u, Voucher: voucher, Want: want, Got: FileSum{Size: n, SHA256: got}}
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	return final, nil
}

// HashMismatchError says that a downloaded file is not the one its
// voucher (InRelease or Packages) promised.
type HashMismatchError struct {
	File, URL, Voucher string
	Want, Got          FileSum
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%s refused: its SHA256 does not match %s (want %s, %d bytes; got %s, %d bytes) from %s: the mirror is corrupt or the download was tampered with",
		e.File, e.Voucher, e.Want.SHA256, e.Want.Size, e.Got.SHA256, e.Got.Size, e.URL)
}

func (r *Repo) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	body, err := r.open(ctx, u)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, limit)); err != nil {
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	return buf.Bytes(), nil
}

func (r *Repo) open(ctx context.Context, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w (is the mirror reachable? set another with --mirror)", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("download %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

func (r *Repo) url(parts ...string) string {
	return strings.TrimRight(r.Mirror, "/") + "/" + path.Join(parts...)
}

func (r *Repo) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
