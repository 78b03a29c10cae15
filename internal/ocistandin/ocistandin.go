// Package ocistandin serves container images that tests assemble, from
// an OCI registry on loopback: a stand-in for the registries DIB's
// container elements pull from (quay.io, docker.io), which these
// machines cannot reach. The registry is go-containerregistry's
// reference server; the images are made from root trees packed as tar
// layers, as a distribution's base image is.
package ocistandin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is an OCI image whose layers are the tar files at paths, in
// order (each a root tree, as `tar -C ROOT -cf LAYER .` makes it), for
// the platform arch (an OCI architecture, Go's GOARCH: amd64, arm64),
// running /bin/sh by default.
func Image(arch string, paths ...string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, p := range paths {
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	return mutate.ConfigFile(img, cf)
}

// Registry is an OCI registry serving on 127.0.0.1 until the test ends.
type Registry struct {
	// Host is its address, host:port, as image references name it.
	Host  string
	blobs *tamperingBlobs
}

// Serve starts a registry on 127.0.0.1, plain HTTP, keeping what is
// pushed to it in memory.
func Serve(t testing.TB) *Registry {
	t.Helper()
	blobs := &tamperingBlobs{mem: registry.NewInMemoryBlobHandler(), changed: map[v1.Hash]bool{}}
	srv := httptest.NewServer(registry.New(registry.WithBlobHandler(blobs)))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{Host: u.Host, blobs: blobs}
}

// Push stores img in r as repo:tag (repo as "library/fedora") and
// returns its manifest digest ("sha256:…").
func (r *Registry) Push(ctx context.Context, repo, tag string, img v1.Image) (string, error) {
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// TamperLayers makes r serve every layer of img with one byte changed
// from then on, under the digest its manifest names: what a registry,
// mirror or proxy that altered an image in transit would serve.
func (r *Registry) TamperLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	r.blobs.mu.Lock()
	defer r.blobs.mu.Unlock()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		r.blobs.changed[d] = true
	}
	return nil
}

// tamperingBlobs keeps blobs in memory and serves those marked changed
// with their last byte altered.
type tamperingBlobs struct {
	mem     registry.BlobHandler
	mu      sync.Mutex
	changed map[v1.Hash]bool
}

func (b *tamperingBlobs) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	rc, err := b.mem.Get(ctx, repo, h)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	changed := b.changed[h]
	b.mu.Unlock()
	if !changed {
		return rc, nil
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("blob %s is empty: nothing to alter", h)
	}
	data[len(data)-1] ^= 0xff
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *tamperingBlobs) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	return b.mem.(registry.BlobStatHandler).Stat(ctx, repo, h)
}

func (b *tamperingBlobs) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return b.mem.(registry.BlobPutHandler).Put(ctx, repo, h, rc)
}
