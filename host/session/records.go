package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/gateway"
	"github.com/dibvm/dibvm/host/lockfile"
	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/provenance"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// This file is what a build records of itself beside its outputs: the
// lock file and the provenance statement.

// lockFile is the lock file of the build whose image has installed
// these packages: each with the download the proxy served, or that a
// checkpoint resumed from kept.
func (s *session) lockFile(installed []api.Package) ([]byte, error) {
	l := lockfile.Make(installed, s.downloads.Downloads())
	cache := &egress.Cache{Dir: s.j.ImageCache}
	read := map[string][]byte{}
	total := 0
	for i, r := range l.Releases {
		if s.j.ImageCache == "" {
			break
		}
		// Kept by the proxy as it served it (see getRecorded).
		data, ok := read[r.SHA256]
		if !ok {
			data, _ = cache.ReadObject(r.SHA256)
			if total += len(data); total > lockfile.MaxReleaseContent {
				break
			}
			read[r.SHA256] = data
		}
		l.Releases[i].Content = data
	}
	if n := len(l.Packages) - l.Recorded(); n > 0 && s.j.Outputs.Stdout != nil {
		fmt.Fprintf(s.j.Outputs.Stdout, "dibvm: %d of the image's %d packages are in its lock file without the file they came from: the build did not download them over plain HTTP through dibvm's proxy (see README, Lock files)\n", n, len(l.Packages))
	}
	return l.Marshal()
}

// recorder records the build's downloads, reading the suites from the
// Packages indexes: from the image cache, or where a checkpoint made by
// a build with another cache recorded an index this one has not, from
// where that build got it, through proxy as the guest would (by hash,
// so it is the same file).
func recorder(imageCache string, proxy gateway.Proxy, offline bool) *lockfile.Recorder {
	proxy.DownloadCache = imageCache
	cache := &egress.Cache{Dir: imageCache}
	return &lockfile.Recorder{Open: func(u, sum string) (io.ReadCloser, error) {
		if imageCache != "" {
			if f, err := cache.Open(u); err == nil {
				return f, nil
			}
		}
		if offline {
			return nil, errors.New("offline")
		}
		ctx, cancel := context.WithTimeout(context.Background(), indexFetchTimeout)
		body, err := proxy.Fetch(ctx, u, sum)
		if err != nil {
			cancel()
			return nil, err
		}
		return &cancelOnClose{ReadCloser: body, cancel: cancel}, nil
	}}
}

// admits is checkpoint.Build.Admits for a build held to pins: a
// checkpoint is resumed from only if every package and release file it
// was made with is the one the lock names, whoever's build made it.
func admits(l *lockfile.Lock, name string) func([]lockfile.Download) error {
	if l == nil {
		return nil
	}
	pins := l.Pins(name)
	return func(ds []lockfile.Download) error {
		for _, d := range ds {
			u, err := url.Parse(d.URL)
			if err != nil || !egress.Pinnable(u) {
				continue
			}
			sum, err := pins(u)
			if err != nil {
				return fmt.Errorf("%s, which the lock file does not name", d.URL)
			}
			if sum != d.SHA256 {
				return fmt.Errorf("%s as another file than the lock file's (SHA256 %s, not %s)", d.URL, d.SHA256, sum)
			}
		}
		return nil
	}
}

// keepReleases keeps in the image cache the release files the lock l
// carries, where the proxy serves them from (see egress.Proxy's
// getRecorded): the archive has replaced them since.
func keepReleases(imageCache string, l *lockfile.Lock) error {
	cache := &egress.Cache{Dir: imageCache}
	for _, r := range l.Releases {
		if r.Content != nil {
			if err := cache.WriteObject(r.Content); err != nil {
				return fmt.Errorf("keep the lock file's %s in the image cache: %w", r.URL, err)
			}
		}
	}
	return nil
}

// indexFetchTimeout bounds fetching one Packages index again: Debian's
// largest is some 10 MiB compressed.
const indexFetchTimeout = 5 * time.Minute

// cancelOnClose is a body whose request's context ends when it is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

// provenance writes the build's provenance statement,
// IMAGE.provenance.json, of the outputs written, and its signature where
// the job has a key.
func (s *session) provenance(written []outputs.Written) ([]outputs.Written, error) {
	b, err := s.j.Provenance()
	if err != nil {
		return nil, fmt.Errorf("the provenance statement: %w", err)
	}
	b.Version, b.Commit = s.j.Version, s.j.Commit
	b.Started, b.Finished = s.started, time.Now()
	if a := s.appliance; a != nil {
		b.Appliance = map[string]string{}
		for _, f := range []string{a.Kernel, a.Initrd} {
			sum, _, err := sha256sum.File(f)
			if err != nil {
				return nil, fmt.Errorf("the provenance statement: the helper appliance: %w", err)
			}
			b.Appliance[filepath.Base(f)] = sum
		}
	}
	var subjects []provenance.Output
	for _, w := range written {
		subjects = append(subjects, provenance.Output{Resource: provenance.Resource{Name: filepath.Base(w.Path), Digest: map[string]string{"sha256": w.SHA256}}, Lock: w.Lock})
	}
	st, err := provenance.Make(b, subjects)
	if err != nil {
		return nil, fmt.Errorf("the provenance statement: %w", err)
	}
	data, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	var sig []byte
	if s.j.Sign != nil {
		if sig, err = s.j.Sign.Sign(data, provenance.SignatureNamespace); err != nil {
			return nil, fmt.Errorf("the provenance statement: %w", err)
		}
	}
	name := s.j.Outputs.Output + outputs.ProvenanceSuffix
	w, err := outputs.WriteFile(name, data)
	if err != nil || sig == nil {
		return []outputs.Written{w}, err
	}
	ws, err := outputs.WriteFile(name+outputs.SignatureSuffix, sig)
	return []outputs.Written{w, ws}, err
}
