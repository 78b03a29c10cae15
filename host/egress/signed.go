package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/gofrs/flock"

	"github.com/dibvm/dibvm/host/sha256sum"
)

// A SignedSource is a directory tree of files listed, with their SHA256,
// in a SHA256SUMS beside them that a detached OpenPGP signature
// (SHA256SUMS.gpg) signs: Ubuntu's cloud images are published so. Files
// change under the same URL (".../noble/current/"), so their URLs do not
// name their content, but the signed sums do: the proxy keeps a file in
// the cache under its SHA256 only after it checked the signature with
// Keyring and the file against the signed sum, and serves it from there
// while the signed sums still name it. It refuses a file that does not
// match, naming it. Downloads from a source are taken under a lock, so
// that concurrent builds fetch a file once.
type SignedSource struct {
	Prefix string // absolute http:// URL; the guest's GETs under it
	// Upstream, when set, is where the proxy fetches what the guest asks
	// for under Prefix: the same tree over HTTPS, so that no one on the
	// way can hand the proxy an older, validly signed SHA256SUMS and the
	// image it names (the sums carry no date).
	Upstream string
	Keyring  openpgp.EntityList // the keys SHA256SUMS may be signed by
	KeyName  string             // the keyring in words, for errors
}

// The signed files: names and bounds.
const (
	sumsName      = "SHA256SUMS"
	sigName       = "SHA256SUMS.gpg"
	maxSumsBytes  = 1 << 20
	maxSignedFile = 8 << 30
	// signedLockWait is how long a build waits for another's download
	// from the same source, as DIB's ubuntu element waits for its flock.
	signedLockWait = 20 * time.Minute
	// upstreamIdle bounds how long a download may wait for the server.
	upstreamIdle = 2 * time.Minute
)

// signedSource finds the source u is under, if any.
func (p *Proxy) signedSource(u *url.URL) *SignedSource {
	for i := range p.signed {
		s := &p.signed[i]
		if strings.HasPrefix(u.String(), s.Prefix) && !strings.Contains(u.Path, "/../") && u.RawQuery == "" {
			return s
		}
	}
	return nil
}

// upstream is where the proxy fetches u from.
func (s *SignedSource) upstream(u *url.URL) string {
	if s.Upstream == "" {
		return u.String()
	}
	return s.Upstream + strings.TrimPrefix(u.String(), s.Prefix)
}

// hashName names a cache entry for s (a URL or part of one), so that no
// URL can reach outside the cache's directory.
func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// signedDir is where the cache keeps what it checked for the directory
// of u: the last good SHA256SUMS and its signature.
func (c *Cache) signedDir(u *url.URL) string {
	return filepath.Join(c.Dir, "signed", hashName(u.Host+path.Dir(u.EscapedPath())+"/"))
}

// object is where the cache keeps a checked file by its SHA256.
func (c *Cache) object(sha string) string {
	return filepath.Join(c.Dir, "signed", "sha256", sha)
}

// serveSigned answers a GET under a signed source.
func (p *Proxy) serveSigned(conn net.Conn, req *http.Request, src *SignedSource) {
	body, size, status, err := p.signedGet(req.Context(), req.URL, src)
	if err != nil {
		msg := fmt.Sprintf("dibvm: %s: %v", req.URL, err)
		p.notice(msg, msg)
		writeError(conn, status, msg)
		return
	}
	defer body.Close()
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
	io.Copy(conn, body)
}

// signedGet returns the checked file for u and its size, from the cache
// or fetched, or an error and the HTTP status that says it to the guest.
// Nothing is created in the cache before a signature checks out but the
// source's lock, one file per source.
func (p *Proxy) signedGet(ctx context.Context, u *url.URL, src *SignedSource) (body io.ReadCloser, size int64, status int, err error) {
	c := p.cache
	if p.offline {
		if err := p.mayFetchOffline(src.upstream(u)); err != nil {
			return nil, 0, statusOf(err), err
		}
	}
	locks := filepath.Join(c.Dir, "signed", "locks")
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return nil, 0, http.StatusInternalServerError, err
	}
	lock := flock.New(filepath.Join(locks, hashName(src.Prefix)+".lock"))
	lctx, cancel := context.WithTimeout(ctx, signedLockWait)
	defer cancel()
	if ok, err := lock.TryLockContext(lctx, time.Second); !ok {
		if lctx.Err() == nil {
			return nil, 0, http.StatusInternalServerError, fmt.Errorf("lock the image cache: %w", err)
		}
		return nil, 0, http.StatusGatewayTimeout, fmt.Errorf("waited %s for another build's download from %s", signedLockWait, src.Prefix)
	}
	defer lock.Unlock()

	sums, sig, err := p.signedSums(ctx, u, src, c.signedDir(u))
	if err != nil {
		return nil, 0, statusOf(err), err
	}
	name := path.Base(u.Path)
	switch name {
	case sumsName:
		return io.NopCloser(bytes.NewReader(sums)), int64(len(sums)), 0, nil
	case sigName:
		return io.NopCloser(bytes.NewReader(sig)), int64(len(sig)), 0, nil
	}
	want, ok := parseSums(sums)[name]
	if !ok {
		return nil, 0, http.StatusNotFound, fmt.Errorf("%s is not listed in the signed %s", name, sumsName)
	}
	if f, n, err := openChecked(c.object(want), want); err == nil {
		return f, n, 0, nil
	}
	if p.offline {
		return nil, 0, http.StatusForbidden, fmt.Errorf("offline, and %s (SHA256 %s) is not in the image cache", name, want)
	}
	f, n, err := p.fetchChecked(ctx, src.upstream(u), name, c.object(want), want, "the signed "+sumsName)
	if err != nil {
		return nil, 0, statusOf(err), err
	}
	return f, n, 0, nil
}

// mayFetchOffline checks, without the network, that the policy would
// let a fetch of u go out: offline, nothing is fetched, and what an
// earlier build kept is served only where that build's fetch would be
// allowed in this one. An address is checked as a fetch checks it; a name
// against --allow-only, since it cannot be looked up.
func (p *Proxy) mayFetchOffline(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host, portText, _ := net.SplitHostPort(hostPort(u))
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("bad destination %q: want a port number", u.Host)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		_, err = p.resolve(context.Background(), host, uint16(port)) // no look-up for an address
		return err
	}
	return p.mayLookUp(host, uint16(port))
}

// signedSums fetches SHA256SUMS and its signature for u's directory and
// checks the signature, keeping the pair in dir when good; offline, it
// checks the pair kept last time.
func (p *Proxy) signedSums(ctx context.Context, u *url.URL, src *SignedSource, dir string) (sums, sig []byte, err error) {
	keptSums, keptSig := filepath.Join(dir, sumsName), filepath.Join(dir, sigName)
	if p.offline {
		sums, err1 := os.ReadFile(keptSums)
		sig, err2 := os.ReadFile(keptSig)
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, refusal{fmt.Errorf("offline, and no %s for it in the image cache: build once online first", sumsName)}
		}
		if err := checkSignature(sums, sig, src); err != nil {
			return nil, nil, err
		}
		return sums, sig, nil
	}
	base := *u
	base.Path = path.Dir(u.Path) + "/" + sumsName
	if sums, err = p.getSmall(ctx, src.upstream(&base)); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", sumsName, err)
	}
	base.Path += ".gpg"
	if sig, err = p.getSmall(ctx, src.upstream(&base)); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", sigName, err)
	}
	if err := checkSignature(sums, sig, src); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(keptSums, sums); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(keptSig, sig); err != nil {
		return nil, nil, err
	}
	return sums, sig, nil
}

// checkSignature checks sig, armored or not, over sums with src's keys.
func checkSignature(sums, sig []byte, src *SignedSource) error {
	sigReader := io.Reader(bytes.NewReader(sig))
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN PGP")) {
		block, err := armor.Decode(bytes.NewReader(sig))
		if err != nil {
			return refusal{fmt.Errorf("%s: not an OpenPGP signature: %w", sigName, err)}
		}
		sigReader = block.Body
	}
	_, err := openpgp.CheckDetachedSignature(src.Keyring, bytes.NewReader(sums), sigReader, nil)
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return refusal{fmt.Errorf("%s: signed by a key that is not in %s: refusing %s", sigName, src.KeyName, sumsName)}
	}
	if err != nil {
		return refusal{fmt.Errorf("%s: not a good signature of %s by %s (%v): refusing it", sigName, sumsName, src.KeyName, err)}
	}
	return nil
}

// A refusal is a file that failed a check. It is answered 403, which
// download tools do not retry, unlike the 502 of a server that failed.
type refusal struct{ error }

func statusOf(err error) int {
	var r refusal
	var pr *Refused
	if errors.As(err, &r) || errors.As(err, &pr) {
		return http.StatusForbidden
	}
	if errors.As(err, new(errPinned)) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// parseSums reads "sha256 [*]name" lines.
func parseSums(data []byte) map[string]string {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && len(f[0]) == 64 {
			if _, err := hex.DecodeString(f[0]); err == nil {
				sums[strings.TrimPrefix(f[1], "*")] = strings.ToLower(f[0])
			}
		}
	}
	return sums
}

// get starts a download through the checked dial. The download is
// given up when the server sends nothing for upstreamIdle, before the
// response or during the body.
func (p *Proxy) get(ctx context.Context, u string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(upstreamIdle, cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = p.client.Do(req); err == nil {
			resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, cancel: cancel}
			return resp, nil
		}
	}
	timer.Stop()
	cancel()
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the server did not answer within %s", upstreamIdle)
	}
	return nil, err
}

// idleBody is a response body whose download is cancelled when it stalls.
type idleBody struct {
	io.ReadCloser
	timer  *time.Timer
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(upstreamIdle)
	}
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the server sent nothing for %s", upstreamIdle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}

// getSmall fetches a small file.
func (p *Proxy) getSmall(ctx context.Context, u string) ([]byte, error) {
	resp, err := p.get(ctx, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server says %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSumsBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSumsBytes {
		return nil, fmt.Errorf("larger than %d KiB", maxSumsBytes>>10)
	}
	return data, nil
}

// maxPinned bounds the bytes of one run's signed downloads that sit in
// temporary files on the host's disk at once: a file downloaded and
// checked past the cache's budget is served from one, removed but still
// open, for as long as the guest takes to read it, and a guest that asks
// for a large file on many connections and reads none would otherwise
// pin a copy for each. It is one file of the largest size taken.
const maxPinned = maxSignedFile

// errPinned is a download refused at maxPinned.
type errPinned struct{ name string }

func (e errPinned) Error() string {
	return fmt.Sprintf("%s: this build already holds %d GiB of downloads from signed sources in temporary files on the host, "+
		"as many as it may at once (its budget for the image cache is spent); refusing it until the guest has read those", e.name, maxPinned>>30)
}

// pin counts n more bytes against the run's bound on temporary files,
// or fails without counting them.
func (p *Proxy) pin(n int64) bool {
	if p.pinned.Add(n) > p.maxPinned {
		p.pinned.Add(-n)
		return false
	}
	return true
}

// pinWriter writes to a temporary file while the run's bound allows.
type pinWriter struct {
	p    *Proxy
	w    io.Writer
	n    int64 // bytes pinned
	name string
}

func (w *pinWriter) Write(b []byte) (int, error) {
	if !w.p.pin(int64(len(b))) {
		return 0, errPinned{w.name}
	}
	w.n += int64(len(b))
	return w.w.Write(b)
}

// pinnedFile is a checked file served from a temporary file; closing it
// frees its bytes of the bound.
type pinnedFile struct {
	*os.File
	p *Proxy
	n int64
}

func (f *pinnedFile) Close() error {
	f.p.pinned.Add(-f.n)
	return f.File.Close()
}

// fetchChecked downloads u, the file name, and returns it open if its
// SHA256 is want, which says gives. It is kept in the cache at dst while the run's budget
// for the cache lasts (maxCacheAdd, shared with packages); past it, the
// file is served from its temporary file and dropped. What sits in
// temporary files at once is bounded (maxPinned): past it, the download
// is refused.
func (p *Proxy) fetchChecked(ctx context.Context, u, name, dst, want, says string) (io.ReadCloser, int64, error) {
	resp, err := p.get(ctx, u)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("the server says %s", resp.Status)
	}
	if resp.ContentLength > maxSignedFile {
		return nil, 0, fmt.Errorf("larger than %d GiB", maxSignedFile>>30)
	}
	if resp.ContentLength > p.maxPinned-p.pinned.Load() {
		return nil, 0, errPinned{name}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	pw := &pinWriter{p: p, w: tmp, name: name}
	n, err := io.Copy(io.MultiWriter(pw, h), io.LimitReader(resp.Body, maxSignedFile+1))
	if err == nil && n > maxSignedFile {
		err = fmt.Errorf("larger than %d GiB", maxSignedFile>>30)
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			err = refusal{fmt.Errorf("%s has SHA256 %s, but %s says %s: refusing it", name, got, says, want)}
		}
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		p.pinned.Add(-pw.n)
		return nil, 0, err
	}
	if p.cache.added.Add(n) <= maxCacheAdd && os.Rename(tmp.Name(), dst) == nil {
		p.pinned.Add(-pw.n) // the cache's now, counted in its budget
		return tmp, n, nil
	}
	// Else it stays a temporary file, removed now and gone when served.
	return &pinnedFile{File: tmp, p: p, n: pw.n}, n, nil
}

// openChecked opens a cached object, checking that it still is what its
// name says: a cache on disk can be damaged or edited.
func openChecked(name, want string) (*os.File, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	sum, n, err := sha256sum.Reader(f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if sum != want {
		f.Close()
		os.Remove(name)
		return nil, 0, fmt.Errorf("%s: damaged cache entry removed", name)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}

func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".write-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
