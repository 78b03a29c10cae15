// Package debootstrap does the first half of debootstrap's first stage on
// the host, at native speed: it reads the suite's signed index, chooses
// the packages as debootstrap's minbase variant would, downloads and
// checks them, and hands the guest the tarball that `debootstrap
// --unpack-tarball` takes (the layout of `--make-tarball`). The guest's
// own debootstrap then unpacks and configures them: the tree is the one
// debootstrap makes, from the same files.
//
// Under emulation that half was most of debootstrap's time: a Perl
// script reads the 60 MiB Packages file once per dependency round, and
// every package costs a wget and a sha256sum (171 of 290 s under TCG).
//
// The guest asks through the egress proxy (see Service), with the
// arguments it would give debootstrap and the keyring debootstrap would
// check the suite with; the host fetches through the same policy and
// cache as the guest's own downloads, so the guest can reach nothing it
// could not reach itself.
package debootstrap

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ulikunitz/xz"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// Request is what the guest's debootstrap would be run with.
type Request struct {
	Mirror     string // the mirror argument, without a trailing slash
	Suite      string
	Arch       string
	Components []string // --components
	Keyring    openpgp.EntityList
}

// Bounds on what a request can make the host hold.
const (
	maxKeyring      = 4 << 20
	maxInRelease    = 16 << 20
	maxPackages     = 512 << 20 // all components' Packages, uncompressed
	maxDebs         = 2000
	maxDebBytes     = 2 << 30 // minbase is 50 MiB
	maxComponents   = 16
	maxRequestField = 1024
)

var (
	suiteRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	archRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	componentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// ParseRequest reads a request's query (mirror, suite, arch, components,
// variant) and its body, the keyring, binary or armored.
func ParseRequest(q url.Values, keyring []byte) (*Request, error) {
	for k, v := range q {
		if len(v) != 1 || len(v[0]) > maxRequestField {
			return nil, fmt.Errorf("%s: want one value of at most %d bytes", k, maxRequestField)
		}
	}
	if v := q.Get("variant"); v != "minbase" {
		return nil, fmt.Errorf("variant %q: only minbase is done on the host", v)
	}
	r := &Request{Mirror: strings.TrimSuffix(q.Get("mirror"), "/"), Suite: q.Get("suite"), Arch: q.Get("arch")}
	u, err := url.Parse(r.Mirror)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror %q: want an http:// or https:// URL", r.Mirror)
	}
	if !suiteRE.MatchString(r.Suite) {
		return nil, fmt.Errorf("suite %q: not a suite name", r.Suite)
	}
	if !archRE.MatchString(r.Arch) {
		return nil, fmt.Errorf("arch %q: not a Debian architecture", r.Arch)
	}
	for _, c := range strings.FieldsFunc(q.Get("components"), func(r rune) bool { return r == ',' || r == ' ' }) {
		if !componentRE.MatchString(c) || strings.Contains(c, "..") {
			return nil, fmt.Errorf("component %q: not a component name", c)
		}
		if slices.Contains(r.Components, c) {
			return nil, fmt.Errorf("component %q given twice", c)
		}
		r.Components = append(r.Components, c)
	}
	if len(r.Components) == 0 || len(r.Components) > maxComponents {
		return nil, fmt.Errorf("components: want 1 to %d", maxComponents)
	}
	if len(keyring) == 0 || len(keyring) > maxKeyring {
		return nil, fmt.Errorf("keyring: want 1 byte to %d MiB", maxKeyring>>20)
	}
	if r.Keyring, err = readKeyring(keyring); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return r, nil
}

// readKeyring reads a binary keyring, or an armored one (one or more
// blocks), as apt's .asc files are.
func readKeyring(data []byte) (openpgp.EntityList, error) {
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	if !bytes.Contains(data, []byte(begin)) {
		return openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	// Block by block: armor.Decode reads ahead past a block's end.
	var all openpgp.EntityList
	for _, chunk := range bytes.SplitAfter(data, []byte("-----END PGP PUBLIC KEY BLOCK-----")) {
		i := bytes.Index(chunk, []byte(begin))
		if i < 0 {
			continue
		}
		block, err := armor.Decode(bytes.NewReader(chunk[i:]))
		if err != nil {
			return nil, err
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	return all, nil
}

// Fetch gets a URL's body, which the caller checks against sha256 when
// that is not empty; the host's is the egress proxy's, which applies the
// guest's network policy and keeps in the cache what matches.
type Fetch = func(ctx context.Context, url, sha256 string) (io.ReadCloser, error)

// Plan is debootstrap's work up to unpacking: the suite's files and the
// packages chosen, in the order debootstrap lists them.
type Plan struct {
	req        *Request
	inRelease  []byte
	release    *debrepo.Release
	components []*component
	sel        selection
	debs       []deb
}

// MakePlan reads the suite (InRelease, checked against the request's
// keyring, and each component's Packages, checked against it) and
// chooses the packages.
func MakePlan(ctx context.Context, req *Request, fetch Fetch, now time.Time) (*Plan, error) {
	p := &Plan{req: req}
	relURL := req.Mirror + "/dists/" + req.Suite + "/InRelease"
	data, err := get(ctx, fetch, relURL, "", maxInRelease)
	if err != nil {
		return nil, err
	}
	p.inRelease = data
	if p.release, err = debrepo.VerifySignature(data, req.Keyring, now); err != nil {
		return nil, fmt.Errorf("%s: %w", relURL, err)
	}
	// validate_suite: the file must be the suite asked for.
	if req.Suite != p.release.Suite && req.Suite != p.release.Codename {
		return nil, fmt.Errorf("asked to install suite %s, but got %s (codename: %s) from mirror", req.Suite, p.release.Suite, p.release.Codename)
	}
	if codenamesNotMerged.MatchString(p.release.Codename) {
		return nil, fmt.Errorf("%s is older than debootstrap's --unpack-tarball handles alike (it would merge /usr)", p.release.Codename)
	}
	// extract_release_components: the Release's components, in its
	// order, that were asked for. With --unpack-tarball debootstrap reads
	// no Release and takes --components as given, so they must be those.
	var names []string
	for _, c := range p.release.Components {
		if slices.Contains(req.Components, c) {
			names = append(names, c)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("invalid Release file, no valid components")
	}
	if !slices.Equal(names, req.Components) {
		return nil, fmt.Errorf("components %s: the Release has %s of them, in this order", strings.Join(req.Components, ","), strings.Join(names, ","))
	}
	budget := int64(maxPackages)
	for _, c := range names {
		data, err := p.packages(ctx, fetch, c, budget)
		if err != nil {
			return nil, err
		}
		budget -= int64(len(data))
		comp, err := newComponent(c, data)
		if err != nil {
			return nil, err
		}
		p.components = append(p.components, comp)
	}
	p.sel = choose(p.components, p.release.Codename, strings.HasPrefix(req.Mirror, "https://"))
	if p.debs, err = locate(p.components, append(append([]string{}, p.sel.Required...), p.sel.Base...)); err != nil {
		return nil, err
	}
	if len(p.debs) > maxDebs {
		return nil, fmt.Errorf("%d packages chosen: more than %d", len(p.debs), maxDebs)
	}
	return p, nil
}

// packages fetches one component's Packages in the smallest form the
// Release lists (by hash where the mirror offers it), checks it, and
// returns it uncompressed.
func (p *Plan) packages(ctx context.Context, fetch Fetch, comp string, limit int64) ([]byte, error) {
	base := comp + "/binary-" + p.req.Arch + "/Packages"
	type form struct {
		name string
		sum  debrepo.FileSum
	}
	var best *form
	for _, ext := range []string{".xz", ".gz", ""} {
		if s, ok := p.release.SHA256[base+ext]; ok && (best == nil || s.Size < best.sum.Size) {
			best = &form{base + ext, s}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("invalid Release file, no entry for %s", base)
	}
	u := p.req.Mirror + "/dists/" + p.req.Suite + "/" + best.name
	if p.release.AcquireByHash {
		u = p.req.Mirror + "/dists/" + p.req.Suite + "/" + path.Dir(best.name) + "/by-hash/SHA256/" + best.sum.SHA256
	}
	raw, err := get(ctx, fetch, u, best.sum.SHA256, limit)
	if err != nil {
		return nil, err
	}
	if err := check(raw, best.sum); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	var r io.Reader = bytes.NewReader(raw)
	switch path.Ext(best.name) {
	case ".xz":
		if r, err = xz.NewReader(r); err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
	case ".gz":
		if r, err = gzip.NewReader(r); err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(r, limit+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("the Packages files come to more than %d MiB uncompressed", maxPackages>>20)
	}
	if s, ok := p.release.SHA256[base]; ok && best.name != base {
		if err := check(buf.Bytes(), s); err != nil {
			return nil, fmt.Errorf("%s uncompressed: %w", u, err)
		}
	}
	return buf.Bytes(), nil
}

func check(data []byte, want debrepo.FileSum) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want.SHA256 || int64(len(data)) != want.Size {
		return fmt.Errorf("SHA256 %s (%d bytes) does not match the Release file's %s (%d bytes)", got, len(data), want.SHA256, want.Size)
	}
	return nil
}

func get(ctx context.Context, fetch Fetch, u, sum string, limit int64) ([]byte, error) {
	body, err := fetch(ctx, u, sum)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, limit+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s: larger than %d MiB", u, limit>>20)
	}
	return buf.Bytes(), nil
}

// Packages are the names chosen, required first, as debootstrap's
// required and base files list them.
func (p *Plan) Packages() (required, base []string) { return p.sel.Required, p.sel.Base }
