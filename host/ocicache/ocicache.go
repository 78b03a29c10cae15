// Package ocicache keeps artifacts of a build's work (a checkpoint's
// layers and their description) in an OCI-distribution registry, signed
// by who pushed them, so that other machines can resume from them.
//
// One artifact a content key: the tag is the key, the manifest's
// layers are the files, then the description (which names every file
// by digest and the key it is for), then an SSHSIG signature of the
// description. A puller trusts nothing of the registry but what it can
// check: the tag only finds a manifest; the signature must be by a key
// the user trusts; the description must be for the key the puller
// computed; and each file must have the digest the description gives.
package ocicache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dibvm/dibvm/host/sshsign"
)

// Media types of an artifact's parts.
const (
	ArtifactType    = "application/vnd.dibvm.cache.v1"
	FileType        = "application/vnd.dibvm.cache.file.v1"
	DescriptionType = "application/vnd.dibvm.cache.description.v1+json"
	SignatureType   = "application/vnd.dibvm.cache.signature.v1.sshsig"
	// Namespace is the SSHSIG namespace of a description's signature.
	Namespace = "dibvm-cache"
)

// maxDescription bounds the description read from a registry.
const maxDescription = 4 << 20

// A Remote is a repository in a registry.
type Remote struct {
	Repo name.Repository
	// Auth signs requests; nil: the user's Docker or podman credentials.
	Auth authn.Authenticator
	// Stall bounds each wait on the registry (DefaultStall if 0): an
	// operation gives up once nothing has moved for this long.
	Stall time.Duration
	// Limit, if not 0, is the most bytes an artifact's files may have
	// for Pull to fetch them.
	Limit int64

	once      sync.Once
	transport *http.Transport
}

// Parse reads REF, a repository such as registry.example:5000/team/cache.
func Parse(ref string) (*Remote, error) {
	repo, err := name.NewRepository(ref)
	if err != nil {
		return nil, fmt.Errorf("%q: not a repository (give REGISTRY/PATH, such as registry.example/team/dibvm-cache): %w", ref, err)
	}
	return &Remote{Repo: repo}, nil
}

// A File is one file of an artifact.
type File struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	path   string
}

// Description is what an artifact holds, signed: the key it is for,
// its files, and what the caller keeps with them (a checkpoint's
// descriptions).
type Description struct {
	Key   string          `json:"key"`
	Files []File          `json:"files"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// keyPattern is a content key, as a tag can be one: a checkpoint's (64
// hex digits), or an appliance base's (see vmimage.BaseKey).
var keyPattern = regexp.MustCompile(`^[0-9a-z][0-9a-z.-]{0,127}$`)
var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// fileLayer is a file as a layer, read from disk when it is sent.
type fileLayer struct {
	path string
	h    v1.Hash
	n    int64
}

func (f fileLayer) Digest() (v1.Hash, error)           { return f.h, nil }
func (f fileLayer) Compressed() (io.ReadCloser, error) { return os.Open(f.path) }
func (f fileLayer) Size() (int64, error)               { return f.n, nil }
func (f fileLayer) MediaType() (types.MediaType, error) {
	return FileType, nil
}

// rawManifest is a manifest's bytes, to Put as they are.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Push sends files (each with its path, digest and size, which the
// registry checks) and data as the artifact of key, signed by signer. A
// blob the registry has is not sent again; the tag is written last, so
// an interrupted push leaves no artifact, and pushes of one key by two
// runners leave one or the other whole.
func (r *Remote) Push(ctx context.Context, key string, files []File, data []byte, signer *sshsign.Signer) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("key %q: not a content key", key)
	}
	ctx, w, stop := r.watched(ctx)
	defer stop()
	desc := Description{Key: key, Data: data}
	var layers []v1.Layer
	for _, f := range slices.SortedFunc(slices.Values(files), func(a, b File) int { return strings.Compare(a.Name, b.Name) }) {
		h, err := v1.NewHash(f.Digest)
		if err != nil || !fileName.MatchString(f.Name) {
			return fmt.Errorf("file %q, digest %q: not a file to push", f.Name, f.Digest)
		}
		l, err := partial.CompressedToLayer(fileLayer{path: f.path, h: h, n: f.Size})
		if err != nil {
			return err
		}
		layers = append(layers, l)
		desc.Files = append(desc.Files, File{Name: f.Name, Digest: h.String(), Size: f.Size})
	}
	db, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	sig, err := signer.Sign(db, Namespace)
	if err != nil {
		return err
	}
	layers = append(layers, static.NewLayer(db, DescriptionType), static.NewLayer(sig, SignatureType))
	cfg := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	p, err := remote.NewPusher(r.options(ctx, w)...)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType}
	for _, l := range append([]v1.Layer{cfg}, layers...) {
		n, _ := l.Size()
		lctx, cancel := context.WithTimeoutCause(ctx, w.budget(n), fmt.Errorf("%w: a file of %d MiB took longer than %s", ErrStalled, n>>20, w.budget(n)))
		err := p.Upload(lctx, r.Repo, l)
		if err != nil {
			err = cause(lctx, err)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("push to %s: %w", r.Repo, err)
		}
		d, err := partial.Descriptor(l)
		if err != nil {
			return err
		}
		if l == cfg {
			m.Config = *d
		} else {
			m.Layers = append(m.Layers, *d)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeoutCause(ctx, 4*w.stall, fmt.Errorf("%w: the manifest took longer than %s", ErrStalled, 4*w.stall))
	defer cancel()
	if err := p.Put(pctx, r.Repo.Tag(key), rawManifest(raw)); err != nil {
		return fmt.Errorf("push to %s: %w", r.Repo, cause(pctx, err))
	}
	return nil
}

// LocalFile is the file at path as Push sends it, named name, of the
// digest and size its caller has checked.
func LocalFile(name, path, digest string, size int64) File {
	return File{Name: name, Digest: digest, Size: size, path: path}
}

// ErrNotFound is an artifact the registry does not have.
var ErrNotFound = errors.New("not in the registry")

// ErrRefused is an artifact that is not to be used: unsigned, signed by
// a key not trusted, for another key, too large, or with a file whose
// bytes are not its digest's. Other errors are the registry failing.
var ErrRefused = errors.New("refused")

// Pull fetches the artifact of key, if it is signed by a trusted key,
// is for key, and accept (if set) takes its description: each file is
// fetched into partials (see fetch) and linked into into under its name.
// have gives the path of a file the caller already has by digest, which
// is not fetched. Files are fetched one at a time, each streamed to disk
// and checked by its digest.
func (r *Remote) Pull(ctx context.Context, key string, trusted sshsign.Trusted, partials, into string, have func(digest string) (string, bool), accept func(*Description) error) (*Description, error) {
	ctx, w, stop := r.watched(ctx)
	defer stop()
	desc, _, err := r.describe(ctx, w, key, trusted)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range desc.Files {
		total += f.Size
	}
	if r.Limit > 0 && total > r.Limit {
		return nil, fmt.Errorf("%w: %s:%s: %d MiB of files, more than the %d MiB the cache may take", ErrRefused, r.Repo, key, total>>20, r.Limit>>20)
	}
	if accept != nil {
		if err := accept(desc); err != nil {
			return nil, fmt.Errorf("%w: %s:%s: %w", ErrRefused, r.Repo, checkpointShort(key), err)
		}
	}
	for i, f := range desc.Files {
		if p, ok := have(f.Digest); ok {
			desc.Files[i].path = p
			continue
		}
		if err := r.fetch(ctx, w, f, partials, filepath.Join(into, f.Name)); err != nil {
			return nil, err
		}
		desc.Files[i].path = filepath.Join(into, f.Name)
	}
	return desc, nil
}

// checkpointShort is key as a message names it.
func checkpointShort(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}

// Describe is the description of key's artifact, if it is signed by a
// trusted key and is for key, and the fingerprint of the key that
// signed it.
func (r *Remote) Describe(ctx context.Context, key string, trusted sshsign.Trusted) (*Description, string, error) {
	ctx, w, stop := r.watched(ctx)
	defer stop()
	return r.describe(ctx, w, key, trusted)
}

func (r *Remote) describe(ctx context.Context, w *watch, key string, trusted sshsign.Trusted) (*Description, string, error) {
	if !keyPattern.MatchString(key) {
		return nil, "", fmt.Errorf("key %q: not a content key", key)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, 4*w.stall, fmt.Errorf("%w: its description took longer than %s", ErrStalled, 4*w.stall))
	defer cancel()
	opts := r.options(ctx, w)
	got, err := remote.Get(r.Repo.Tag(key), opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, "", ErrNotFound
		}
		return nil, "", fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	var m v1.Manifest
	if err := json.Unmarshal(got.Manifest, &m); err != nil {
		return nil, "", fmt.Errorf("%w: %s:%s: %w", ErrRefused, r.Repo, key, err)
	}
	var descL, sigL *v1.Descriptor
	for i := range m.Layers {
		switch m.Layers[i].MediaType {
		case DescriptionType:
			descL = &m.Layers[i]
		case SignatureType:
			sigL = &m.Layers[i]
		}
	}
	if descL == nil || sigL == nil {
		return nil, "", fmt.Errorf("%w: %s:%s: %w", ErrRefused, r.Repo, key, errUnsigned)
	}
	db, err := r.small(ctx, *descL, opts)
	if err != nil {
		return nil, "", err
	}
	sig, err := r.small(ctx, *sigL, opts)
	if err != nil {
		return nil, "", err
	}
	signer, err := trusted.Verify(db, sig, Namespace)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s:%s: %w", ErrRefused, r.Repo, key, err)
	}
	var desc Description
	if err := json.Unmarshal(db, &desc); err != nil {
		return nil, "", fmt.Errorf("%w: %s:%s: its description: %w", ErrRefused, r.Repo, key, err)
	}
	if desc.Key != key {
		return nil, "", fmt.Errorf("%w: %s:%s: signed for key %s, not this one", ErrRefused, r.Repo, key, desc.Key)
	}
	for _, f := range desc.Files {
		if !fileName.MatchString(f.Name) || f.Size < 0 {
			return nil, "", fmt.Errorf("%w: %s:%s: file %q: not a file name", ErrRefused, r.Repo, key, f.Name)
		}
	}
	return &desc, signer, nil
}

// Has says whether the repository has an artifact under key (the
// registry's word: for deciding what to push, not what to take).
func (r *Remote) Has(ctx context.Context, key string) (bool, error) {
	if !keyPattern.MatchString(key) {
		return false, fmt.Errorf("key %q: not a content key", key)
	}
	ctx, w, stop := r.watched(ctx)
	defer stop()
	_, err := remote.Head(r.Repo.Tag(key), r.options(ctx, w)...)
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
}

// Keys are the content keys the repository has artifacts under: its
// tags that are keys, which say only where to look.
func (r *Remote) Keys(ctx context.Context) ([]string, error) {
	ctx, w, stop := r.watched(ctx)
	defer stop()
	tags, err := remote.List(r.Repo, r.options(ctx, w)...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	var out []string
	for _, t := range tags {
		if keyPattern.MatchString(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

var errUnsigned = errors.New("not signed: no description and signature")

// small fetches a small blob, checked by digest.
func (r *Remote) small(ctx context.Context, d v1.Descriptor, opts []remote.Option) ([]byte, error) {
	if d.Size > maxDescription {
		return nil, fmt.Errorf("%w: %s: a description of %d bytes", ErrRefused, r.Repo, d.Size)
	}
	l, err := remote.Layer(r.Repo.Digest(d.Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxDescription+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Repo, cause(ctx, err))
	}
	return b, nil
}

// isNotFound says whether the registry has no such tag or repository.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// Path is where a pulled file is.
func (f File) Path() string { return f.path }
