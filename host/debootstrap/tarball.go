package debootstrap

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// downloads bounds the packages fetched at once.
const downloads = 6

// Download fetches every chosen package into dir, each checked against
// its Packages entry, and returns the files in the plan's order.
func (p *Plan) Download(ctx context.Context, fetch Fetch, dir string) ([]string, error) {
	var total int64
	for _, d := range p.debs {
		n, err := strconv.ParseInt(d.Size, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: bad Size %q in Packages", d.Package, d.Size)
		}
		if total += n; total > maxDebBytes {
			return nil, fmt.Errorf("the packages chosen come to more than %d GiB", maxDebBytes>>30)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(downloads)
	files := make([]string, len(p.debs))
	for i, d := range p.debs {
		files[i] = filepath.Join(dir, fmt.Sprintf("%04d.deb", i))
		g.Go(func() error { return p.fetchDeb(ctx, fetch, d, files[i]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return files, nil
}

func (p *Plan) fetchDeb(ctx context.Context, fetch Fetch, d deb, name string) error {
	u := p.req.Mirror + "/" + d.Filename
	if strings.HasPrefix(d.Filename, "/") || slices.Contains(strings.Split(d.Filename, "/"), "..") {
		return fmt.Errorf("%s: bad Filename %q in Packages", d.Package, d.Filename)
	}
	body, err := fetch(ctx, u, d.SHA256)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	want, _ := strconv.ParseInt(d.Size, 10, 64)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, want+1))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != want || got != d.SHA256 {
		return fmt.Errorf("%s: SHA256 %s (%d bytes) does not match Packages' %s (%d bytes)", u, got, n, d.SHA256, want)
	}
	return f.Close()
}

// listName is where debootstrap keeps a file of the mirror in the
// target (its apt_dest): the URL without its scheme, slashes made
// underscores, under var/lib/apt/lists.
func (p *Plan) listName(rel string) string {
	s := p.req.Mirror + "_" + rel
	if i := strings.Index(s, "://"); i >= 0 && !strings.Contains(s[:i], ":") {
		s = s[i+3:]
	}
	return "var/lib/apt/lists/" + strings.ReplaceAll(s, "/", "_")
}

// splitInRelease is debootstrap's split_inline_sig: the signed text
// (lines joined by newlines, with no newline after the last) and the
// signature block.
func splitInRelease(data []byte) (release, sig []byte) {
	var rel, s bytes.Buffer
	state, first := "pre-begin", true
	for _, l := range strings.SplitAfter(string(data), "\n") {
		l, ok := strings.CutSuffix(l, "\n")
		if !ok {
			break // read -r drops a last line with no newline
		}
		switch {
		case state == "pre-begin" && l == "-----BEGIN PGP SIGNED MESSAGE-----":
			state = "begin"
		case state == "begin" && l == "":
			state = "data"
		case state == "data" && l == "-----BEGIN PGP SIGNATURE-----":
			s.WriteString(l + "\n")
			state = "signature"
		case state == "data":
			if !first {
				rel.WriteByte('\n')
			}
			rel.WriteString(l)
			first = false
		case state == "signature":
			s.WriteString(l + "\n")
			if l == "-----END PGP SIGNATURE-----" {
				return rel.Bytes(), s.Bytes()
			}
		}
	}
	return rel.Bytes(), s.Bytes()
}

// WriteTarball writes what `debootstrap --make-tarball` would have
// packed (var/lib/apt, var/cache/apt and debootstrap/) for the plan, with
// the packages from files (Download's), owned by root.
func (p *Plan) WriteTarball(w io.Writer, files []string, now time.Time) error {
	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: now, Uname: "root", Gname: "root", Format: tar.FormatPAX})
	}
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"debootstrap", "var", "var/lib", "var/lib/apt", "var/lib/apt/lists", "var/lib/apt/lists/partial",
		"var/cache", "var/cache/apt", "var/cache/apt/archives", "var/cache/apt/archives/partial"} {
		if err := dir(d); err != nil {
			return err
		}
	}
	dists := "dists/" + p.req.Suite + "/"
	release, sig := splitInRelease(p.inRelease)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{p.listName(dists + "InRelease"), p.inRelease},
		{p.listName(dists + "Release"), release},
		{p.listName(dists + "Release.gpg"), sig},
	} {
		if err := file(f.name, f.data); err != nil {
			return err
		}
	}
	for _, c := range p.components {
		if err := file(p.listName(dists+c.Name+"/binary-"+p.req.Arch+"/Packages"), c.Data); err != nil {
			return err
		}
	}
	var paths, uris bytes.Buffer
	for i, d := range p.debs {
		fmt.Fprintf(&paths, "%s %s\n", d.Package, d.Dest)
		fmt.Fprintf(&uris, "%s %s %s/%s\n", d.Package, d.Version, p.req.Mirror, d.Filename)
		if err := addFile(tw, strings.TrimPrefix(d.Dest, "/"), files[i], now); err != nil {
			return err
		}
	}
	lines := func(s []string) []byte {
		if len(s) == 0 {
			return []byte("\n")
		}
		return []byte(strings.Join(s, "\n") + "\n")
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"debootstrap/debpaths", paths.Bytes()},
		{"debootstrap/deburis", uris.Bytes()},
		{"debootstrap/required", lines(p.sel.Required)},
		{"debootstrap/base", lines(p.sel.Base)},
	} {
		if err := file(f.name, f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, name, src string, now time.Time) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: fi.Size(), ModTime: now, Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
