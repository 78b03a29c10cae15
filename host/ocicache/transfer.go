package ocicache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/dibvm/dibvm/host/termsafe"
)

// This file is how bytes move between a registry and here: every wait
// bounded by the registry's silence, not by the size of what moves, and
// a file pulled in part taken up where it stopped.

// DefaultStall is how long a registry may send and take nothing before
// an operation gives up on it: a registry that is down or hangs costs a
// build this long, once.
const DefaultStall = 15 * time.Second

// ErrStalled is a registry that went silent for longer than its Stall.
var ErrStalled = errors.New("the registry stopped answering")

// watch cancels an operation's context once nothing has come from the
// registry or gone to it for its stall: an answer's headers, and each
// read of a body either way, kick it. A request alone does not, so a
// registry that takes connections and never answers costs one stall,
// however many requests ggcr tries.
type watch struct {
	stall time.Duration
	timer *time.Timer
}

// watched is ctx bounded by r's stall; stop releases it.
func (r *Remote) watched(ctx context.Context) (context.Context, *watch, func()) {
	stall := r.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watch{stall: stall}
	w.timer = time.AfterFunc(stall, func() { cancel(w.stalled()) })
	return ctx, w, func() { w.timer.Stop(); cancel(nil) }
}

func (w *watch) stalled() error { return fmt.Errorf("%w for %s", ErrStalled, w.stall) }

func (w *watch) kick() { w.timer.Reset(w.stall) }

// transport is base with each answer and body kicking w.
func (w *watch) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			req = req.Clone(req.Context())
			// Once it has all of a blob, a registry may check it before
			// it answers: it gets the longer wait the answer's header
			// gets.
			req.Body = &kicker{ReadCloser: req.Body, w: w, atEOF: 4 * w.stall}
		}
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			// The commit of an upload: the registry checks the blob
			// before it answers.
			w.timer.Reset(4 * w.stall)
		}
		resp, err := base.RoundTrip(req)
		if resp != nil {
			w.kick()
			if resp.Body != nil {
				resp.Body = &kicker{ReadCloser: resp.Body, w: w}
			}
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type kicker struct {
	io.ReadCloser
	w     *watch
	atEOF time.Duration // if not 0, the wait after the last byte
}

func (k *kicker) Read(p []byte) (int, error) {
	n, err := k.ReadCloser.Read(p)
	if n > 0 {
		k.w.kick()
	}
	if err == io.EOF && k.atEOF > 0 {
		k.w.timer.Reset(k.atEOF)
	}
	return n, err
}

// base is the transport under every request, one a Remote so that
// connections are reused: a registry that takes no connection or sends
// no header within the stall is given up on (a push's last request,
// which the registry answers once it has checked the blob, is given
// longer).
func (r *Remote) base(w *watch) http.RoundTripper {
	r.once.Do(func() {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout, t.TLSHandshakeTimeout = 4*w.stall, w.stall
		r.transport = t
	})
	return w.transport(r.transport)
}

// options are ggcr's options for one operation under ctx.
func (r *Remote) options(ctx context.Context, w *watch) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.base(w))}
	if r.Auth != nil {
		return append(opts, remote.WithAuth(r.Auth))
	}
	return append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

// cause is err, or why ctx ended if it has: a stalled registry says so,
// whichever timeout saw it first. What the registry said is made safe to
// show, and short.
func cause(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c := context.Cause(ctx); c != nil {
		return c
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (%v)", ErrStalled, err)
	}
	return registryError{err}
}

// registryError is an error with the registry's words in it.
type registryError struct{ err error }

func (e registryError) Error() string {
	s := termsafe.String(e.err.Error())
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

func (e registryError) Unwrap() error { return e.err }

// partialName is where a file of this digest is pulled: named for its
// digest, so that a pull cut off is taken up by the next.
func partialName(dir string, h v1.Hash) string {
	return filepath.Join(dir, ".pull-"+h.Hex)
}

// minRate is the slowest a registry may send or take a file: past a
// stall plus its size at this rate, the transfer is given up.
const minRate = 1 << 20 // bytes a second

// budget is how long moving n bytes may take: at least the wait for a
// registry that checks what it was sent.
func (w *watch) budget(n int64) time.Duration {
	return 4*w.stall + time.Duration(n/minRate)*time.Second
}

// fetch downloads f into partials, then moves it to path once whole and
// of its digest. What an earlier pull of the same digest left is
// taken up from where it stopped (an HTTP range), its bytes checked with
// the rest against the digest; a build pulling the same file is waited
// for.
func (r *Remote) fetch(ctx context.Context, w *watch, f File, partials, path string) error {
	h, err := v1.NewHash(f.Digest)
	if err != nil || h.Algorithm != "sha256" {
		return fmt.Errorf("%w: file %s: digest %q", ErrRefused, f.Name, f.Digest)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, w.budget(f.Size), fmt.Errorf("%w: %s took longer than %s", ErrStalled, f.Name, w.budget(f.Size)))
	defer cancel()
	part := partialName(partials, h)
	// One pull at a time writes in partials: a build pulling what
	// another pulls waits, then finds it whole. (The lock file stays:
	// one removed while held would let two builds write one file.)
	lock := flock.New(filepath.Join(partials, PartialsLock))
	w.timer.Stop() // the registry is not silent: another build is busy
	ok, err := lock.TryLockContext(ctx, 100*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("%w: %s: another build's pull did not end: %v", errLocal, f.Name, err)
	}
	defer lock.Unlock()
	w.kick()
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	defer out.Close()
	sum := sha256.New()
	have, err := io.Copy(sum, out)
	if err != nil || have > f.Size {
		have = 0
		sum.Reset()
		if err := out.Truncate(0); err != nil {
			return fmt.Errorf("%w: %w", errLocal, err)
		}
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	if have < f.Size {
		if err := r.getBlob(ctx, w, h, f.Size, have, out, sum); err != nil {
			if at, _ := out.Seek(0, io.SeekCurrent); at == 0 || errors.Is(err, errBadBytes) {
				// Nothing to take up, or bytes that are not the file's.
				os.Remove(part)
			}
			return fmt.Errorf("%s: %s: %w", r.Repo, f.Name, cause(ctx, err))
		}
	}
	if got := fmt.Sprintf("sha256:%x", sum.Sum(nil)); got != h.String() {
		os.Remove(part)
		return fmt.Errorf("%w: %s: %s: its bytes are %s, not %s", errBadBytes, r.Repo, f.Name, got, h)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	// Moved, not linked: a file taken into a store must have no other
	// name a later pull could write through.
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	return nil
}

// PartialsLock is the lock file of a directory of partial files, which
// the pulls through it hold in turn.
const PartialsLock = ".lock"

// errBadBytes is a file whose bytes are not its digest's, or more or
// fewer than its size: refused, and its partial file dropped.
var errBadBytes error = badBytes{}

type badBytes struct{}

func (badBytes) Error() string        { return ErrRefused.Error() }
func (badBytes) Is(target error) bool { return target == ErrRefused }

// localWriter marks its failures as this machine's (a full disk).
type localWriter struct{ w io.Writer }

func (l localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", errLocal, err)
	}
	return n, err
}

// errLocal is a failure of this machine (its disk, another build), not
// the registry's: the registry is asked again.
var errLocal = errors.New("here")

// getBlob appends to out, and to sum, the bytes of blob h from offset
// on, up to size.
func (r *Remote) getBlob(ctx context.Context, w *watch, h v1.Hash, size, offset int64, out io.Writer, sum hash.Hash) error {
	rt, err := r.blobTransport(ctx, w)
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.Repo.Registry.Scheme(), r.Repo.RegistryStr(), r.Repo.RepositoryStr(), h)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			// No ranges here: start again.
			if s, ok := out.(io.Seeker); ok {
				if _, err := s.Seek(0, io.SeekStart); err != nil {
					return err
				}
			}
			if t, ok := out.(interface{ Truncate(int64) error }); ok {
				if err := t.Truncate(0); err != nil {
					return err
				}
			}
			sum.Reset()
			offset = 0
		}
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: the registry lacks a file its artifact names", ErrRefused)
	default:
		return transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
	}
	n, err := io.Copy(io.MultiWriter(localWriter{out}, sum), io.LimitReader(resp.Body, size-offset+1))
	if err != nil {
		return err
	}
	if offset+n != size {
		return fmt.Errorf("%w: %d bytes, not %d", errBadBytes, offset+n, size)
	}
	return nil
}

// blobTransport is an authenticated transport for the repository's
// blobs, made once an operation.
func (r *Remote) blobTransport(ctx context.Context, w *watch) (http.RoundTripper, error) {
	auth := r.Auth
	if auth == nil {
		a, err := authn.DefaultKeychain.Resolve(r.Repo.Registry)
		if err != nil {
			return nil, err
		}
		auth = a
	}
	return transport.NewWithContext(ctx, r.Repo.Registry, auth, r.base(w), []string{r.Repo.Scope(transport.PullScope)})
}
