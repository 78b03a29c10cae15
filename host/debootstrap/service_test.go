package debootstrap

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"

	"github.com/dibvm/dibvm/guestagent/api"
)

// mirror is a Debian mirror on the loopback interface, standing in for a
// real one so that every case (a tampered package, a foreign key) can be
// made: one suite, one component, by-hash indexes, signed by its own key.
type mirror struct {
	srv     *httptest.Server
	key     *openpgp.Entity
	files   map[string][]byte
	served  []string
	tamper  string // a path whose bytes are changed after signing
	keyring []byte // the public key, binary
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	key, err := openpgp.NewEntity("test archive", "", "archive@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &mirror{key: key, files: map[string][]byte{}}
	var pub bytes.Buffer
	if err := key.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	m.keyring = pub.Bytes()
	debs := []struct{ name, version, deps, priority string }{
		{"base-files", "13", "libc6", "required"},
		{"libc6", "2.41-1", "", "optional"},
		{"apt", "1:3.0", "libc6, gpgv", "important"},
		{"gpgv", "2.4", "", "optional"},
		{"unwanted", "1", "", "optional"},
	}
	var pk strings.Builder
	for _, d := range debs {
		body := []byte("a deb named " + d.name)
		path := fmt.Sprintf("pool/main/%c/%s/%s_%s_amd64.deb", d.name[0], d.name, d.name, strings.ReplaceAll(d.version, "1:", ""))
		m.files["/debian/"+path] = body
		sum := sha256.Sum256(body)
		fmt.Fprintf(&pk, "Package: %s\nVersion: %s\nArchitecture: amd64\nPriority: %s\n", d.name, d.version, d.priority)
		if d.deps != "" {
			fmt.Fprintf(&pk, "Depends: %s\n", d.deps)
		}
		fmt.Fprintf(&pk, "Filename: %s\nSize: %d\nSHA256: %x\n\n", path, len(body), sum)
	}
	plain := []byte(pk.String())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	sumOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	m.files["/debian/dists/stable/main/binary-amd64/by-hash/SHA256/"+sumOf(gz.Bytes())] = gz.Bytes()
	release := fmt.Sprintf("Origin: Test\nSuite: stable\nCodename: trixie\nDate: Wed, 02 Dec 2026 10:00:00 UTC\nComponents: main contrib\nAcquire-By-Hash: yes\nSHA256:\n %s %d main/binary-amd64/Packages\n %s %d main/binary-amd64/Packages.gz\n",
		sumOf(plain), len(plain), sumOf(gz.Bytes()), gz.Len())
	var signed bytes.Buffer
	w, err := clearsign.Encode(&signed, key.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As Debian's InRelease: no empty line before the signature.
	io.WriteString(w, strings.TrimSuffix(release, "\n"))
	w.Close()
	m.files["/debian/dists/stable/InRelease"] = signed.Bytes()
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.served = append(m.served, r.URL.Path)
		b, ok := m.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == m.tamper {
			b = append([]byte("X"), b[1:]...)
		}
		w.Write(b)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mirror) fetch(ctx context.Context, u, _ string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

// ask sends the guest's request to the service.
func (m *mirror) ask(t *testing.T, keyring []byte, q url.Values) *http.Response {
	t.Helper()
	if q == nil {
		q = url.Values{"mirror": {m.srv.URL + "/debian/"}, "suite": {"stable"}, "arch": {"amd64"}, "components": {"main"}, "variant": {"minbase"}}
	}
	req := httptest.NewRequest(http.MethodPost, api.DebootstrapURL+"?"+q.Encode(), bytes.NewReader(keyring))
	return Service(t.TempDir())(req, m.fetch)
}

func TestServiceTarball(t *testing.T) {
	m := newMirror(t)
	resp := m.ask(t, m.keyring, nil)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	got := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(body))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = fmt.Sprintf("%o %s", h.Mode, data)
	}
	host := strings.TrimPrefix(m.srv.URL, "http://")
	lists := "var/lib/apt/lists/" + host + "_debian_dists_stable_"
	for name, want := range map[string]string{
		"var/cache/apt/archives/partial/":                       "755 ",
		"var/lib/apt/lists/partial/":                            "755 ",
		"debootstrap/required":                                  "644 base-files\nlibc6\n",
		"debootstrap/base":                                      "644 apt\ngpgv\n",
		"var/cache/apt/archives/apt_1%3a3.0_amd64.deb":          "644 a deb named apt",
		"var/cache/apt/archives/base-files_13_amd64.deb":        "644 a deb named base-files",
		lists + "InRelease":                                     "644 " + string(m.files["/debian/dists/stable/InRelease"]),
		lists + "main_binary-amd64_Packages":                    "644 Package: base-files\n",
		"debootstrap/debpaths":                                  "644 apt /var/cache/apt/archives/apt_1%3a3.0_amd64.deb\nbase-files /var/cache/apt/archives/base-files_13_amd64.deb\ngpgv /var/cache/apt/archives/gpgv_2.4_amd64.deb\nlibc6 /var/cache/apt/archives/libc6_2.41-1_amd64.deb\n",
		lists + "Release":                                       "644 Origin: Test\n",
		lists + "Release.gpg":                                   "644 -----BEGIN PGP SIGNATURE-----\n",
		"var/cache/apt/archives/libc6_2.41-1_amd64.deb":         "644 a deb named libc6",
		"var/cache/apt/archives/gpgv_2.4_amd64.deb":             "644 a deb named gpgv",
		"debootstrap/deburis":                                   "644 apt 1:3.0 " + m.srv.URL + "/debian/pool/main/a/apt/apt_3.0_amd64.deb\n",
		"var/lib/apt/lists/" + host + "_debian_dists_stable_xx": "",
	} {
		have, ok := got[name]
		switch {
		case want == "" && ok:
			t.Errorf("%s is in the tarball", name)
		case want != "" && !ok:
			t.Errorf("%s is not in the tarball", name)
		case want != "" && !strings.HasPrefix(have, want):
			t.Errorf("%s: got %.200q, want it to start %.200q", name, have, want)
		}
	}
	if _, ok := got["var/cache/apt/archives/unwanted_1_amd64.deb"]; ok {
		t.Error("a package nothing needs is in the tarball")
	}
	// split_inline_sig leaves no newline after the last signed line.
	if rel := got[lists+"Release"]; !strings.HasSuffix(rel, "main/binary-amd64/Packages.gz") {
		t.Errorf("Release ends %q", rel[max(0, len(rel)-40):])
	}
	for _, p := range m.served {
		if strings.HasSuffix(p, "/Packages.gz") || strings.HasSuffix(p, "/Packages") {
			t.Errorf("fetched %s although the mirror serves indexes by hash", p)
		}
	}
}

// A keyring in armor, as apt's .asc files are, two keys in two blocks.
func TestServiceArmoredKeyring(t *testing.T) {
	m := newMirror(t)
	other, err := openpgp.NewEntity("someone else", "", "other@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var asc bytes.Buffer
	for _, e := range []*openpgp.Entity{other, m.key} {
		w, err := armor.Encode(&asc, openpgp.PublicKeyType, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Serialize(w)
		w.Close()
		asc.WriteString("\n")
	}
	resp := m.ask(t, asc.Bytes(), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", resp.Status, body)
	}
}

func TestServiceRefuses(t *testing.T) {
	m := newMirror(t)
	other, err := openpgp.NewEntity("someone else", "", "other@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var otherKey bytes.Buffer
	other.Serialize(&otherKey)
	good := url.Values{"mirror": {m.srv.URL + "/debian"}, "suite": {"stable"}, "arch": {"amd64"}, "components": {"main"}, "variant": {"minbase"}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		q.Set(k, v)
		return q
	}
	for _, tc := range []struct {
		name    string
		keyring []byte
		q       url.Values
		tamper  string
		status  int
		words   string
	}{
		{"a foreign key", otherKey.Bytes(), good, "", 502, "bad signature"},
		{"no keyring", nil, good, "", 400, "keyring"},
		{"a keyring that is none", []byte("not a key"), good, "", 400, "keyring"},
		{"a tampered package", m.keyring, good, "/debian/pool/main/l/libc6/libc6_2.41-1_amd64.deb", 502, "libc6_2.41-1_amd64.deb: SHA256"},
		{"another suite", m.keyring, with("suite", "bookworm"), "", 502, "bookworm"},
		{"another component", m.keyring, with("components", "non-free"), "", 502, "no valid components"},
		{"a component the Release lacks", m.keyring, with("components", "main,non-free"), "", 502, "the Release has main of them"},
		{"components out of the Release's order", m.keyring, with("components", "contrib,main"), "", 502, "the Release has main,contrib of them, in this order"},
		{"a component twice", m.keyring, with("components", "main,main"), "", 400, "twice"},
		{"a file mirror", m.keyring, with("mirror", "file:///srv/debian"), "", 400, "mirror"},
		{"a mirror with a password", m.keyring, with("mirror", "http://u:p@127.0.0.1/debian"), "", 400, "mirror"},
		{"a climbing suite", m.keyring, with("suite", "../../etc"), "", 400, "suite"},
		{"a climbing component", m.keyring, with("components", "main,../x"), "", 400, "component"},
		{"another variant", m.keyring, with("variant", "buildd"), "", 400, "only minbase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.tamper = tc.tamper
			resp := m.ask(t, tc.keyring, tc.q)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.words) || !strings.HasPrefix(string(body), "dibvm: debootstrap on the host: ") {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.words)
			}
		})
	}
}

func TestSplitInRelease(t *testing.T) {
	in := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\n- -dash\nSHA256:\n 00 1 main/Packages\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\ntrailing\n"
	rel, sig := splitInRelease([]byte(in))
	if want := "Origin: Debian\n- -dash\nSHA256:\n 00 1 main/Packages"; string(rel) != want {
		t.Errorf("release %q, want %q", rel, want)
	}
	if want := "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"; string(sig) != want {
		t.Errorf("signature %q, want %q", sig, want)
	}
}

func TestListName(t *testing.T) {
	for mirror, want := range map[string]string{
		"http://deb.debian.org/debian":      "var/lib/apt/lists/deb.debian.org_debian_dists_stable_InRelease",
		"https://127.0.0.1:8080/a/b":        "var/lib/apt/lists/127.0.0.1:8080_a_b_dists_stable_InRelease",
		"http://snapshot.debian.org/x/2025": "var/lib/apt/lists/snapshot.debian.org_x_2025_dists_stable_InRelease",
	} {
		p := &Plan{req: &Request{Mirror: mirror}}
		if got := p.listName("dists/stable/InRelease"); got != want {
			t.Errorf("%s: %s, want %s", mirror, got, want)
		}
	}
}
