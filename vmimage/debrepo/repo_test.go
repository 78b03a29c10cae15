package debrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// testMirror is a tiny Debian mirror served over HTTP, signed with a key
// made for the test.
type testMirror struct {
	files  map[string][]byte
	signer *openpgp.Entity
	srv    *httptest.Server
}

func newTestMirror(t *testing.T) *testMirror {
	t.Helper()
	signer, err := openpgp.NewEntity("dibvm test archive", "", "archive@example.invalid", &packet.Config{RSABits: 2048, Algorithm: packet.PubKeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	m := &testMirror{files: map[string][]byte{}, signer: signer}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := m.files[strings.TrimPrefix(r.URL.Path, "/debian/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// publish writes a Packages.xz listing debs and an InRelease vouching for
// it, signed by signer.
func (m *testMirror) publish(t *testing.T, debs map[string][]byte, extraRelease string, signer *openpgp.Entity) {
	t.Helper()
	var pk strings.Builder
	for name, data := range debs {
		fn := "pool/main/" + name + "_1.0_amd64.deb"
		m.files[fn] = data
		fmt.Fprintf(&pk, "Package: %s\nVersion: 1.0\nArchitecture: amd64\nFilename: %s\nSize: %d\nSHA256: %s\n\n", name, fn, len(data), sum(data))
	}
	var xzbuf bytes.Buffer
	zw, _ := xz.NewWriter(&xzbuf)
	zw.Write([]byte(pk.String()))
	zw.Close()
	m.files["dists/stable/main/binary-amd64/Packages.xz"] = xzbuf.Bytes()
	rel := fmt.Sprintf("Origin: Test\nSuite: stable\nCodename: test\nDate: Sun, 01 Nov 2026 00:00:00 UTC\n%sSHA256:\n %s %d main/binary-amd64/Packages.xz\n",
		extraRelease, sum(xzbuf.Bytes()), xzbuf.Len())
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, signer.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(rel))
	w.Close()
	m.files["dists/stable/InRelease"] = out.Bytes()
}

func (m *testMirror) repo() *Repo {
	return &Repo{
		Mirror: m.srv.URL + "/debian", Suite: "stable", Component: "main", Arch: "amd64",
		Keyring: openpgp.EntityList{m.signer},
		Now:     time.Now,
	}
}

func TestRepoAcceptsSignedChain(t *testing.T) {
	m := newTestMirror(t)
	m.publish(t, map[string][]byte{"hello": []byte("not really a deb")}, "", m.signer)
	r := m.repo()
	r.CacheDir = t.TempDir()
	ctx := context.Background()
	rel, err := r.Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	p := idx.Newest("hello")
	if p == nil {
		t.Fatal("hello not in index")
	}
	if _, err := r.Fetch(ctx, p); err != nil {
		t.Fatal(err)
	}
}

func TestRepoRefusesTamperedInRelease(t *testing.T) {
	m := newTestMirror(t)
	m.publish(t, nil, "", m.signer)
	ir := m.files["dists/stable/InRelease"]
	m.files["dists/stable/InRelease"] = bytes.Replace(ir, []byte("Codename: test"), []byte("Codename: evil"), 1)
	_, err := m.repo().Release(context.Background())
	wantErr(t, err, "InRelease", "bad signature")
}

func TestRepoRefusesUnknownKey(t *testing.T) {
	m := newTestMirror(t)
	other, err := openpgp.NewEntity("someone else", "", "x@example.invalid", &packet.Config{RSABits: 2048, Algorithm: packet.PubKeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	m.publish(t, nil, "", other)
	_, err = m.repo().Release(context.Background())
	wantErr(t, err, "InRelease", "not a Debian archive key")
}

func TestRepoRefusesExpiredRelease(t *testing.T) {
	m := newTestMirror(t)
	m.publish(t, nil, "Valid-Until: Sun, 01 Nov 2020 12:00:00 UTC\n", m.signer)
	_, err := m.repo().Release(context.Background())
	wantErr(t, err, "InRelease", "Valid-Until")
}

func TestRepoRefusesPackagesWithWrongHash(t *testing.T) {
	m := newTestMirror(t)
	m.publish(t, map[string][]byte{"hello": []byte("x")}, "", m.signer)
	r := m.repo()
	rel, err := r.Release(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.files["dists/stable/main/binary-amd64/Packages.xz"] = append(m.files["dists/stable/main/binary-amd64/Packages.xz"], 0)
	_, err = r.Index(context.Background(), rel)
	wantErr(t, err, "Packages.xz", "does not match InRelease")
	var hm *HashMismatchError
	if !errors.As(err, &hm) {
		t.Fatalf("error %v is not a HashMismatchError", err)
	}
}

func TestRepoRefusesDebWithWrongHash(t *testing.T) {
	m := newTestMirror(t)
	m.publish(t, map[string][]byte{"hello": []byte("the real thing")}, "", m.signer)
	r := m.repo()
	r.CacheDir = t.TempDir()
	ctx := context.Background()
	rel, err := r.Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	m.files["pool/main/hello_1.0_amd64.deb"] = []byte("the evil thing")
	_, err = r.Fetch(ctx, idx.Newest("hello"))
	wantErr(t, err, "hello_1.0_amd64.deb", "does not match Packages")
}

func TestDebianKeyringLoads(t *testing.T) {
	ring, err := DebianKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if len(ring) < 6 {
		t.Fatalf("got %d Debian archive keys, want at least 6", len(ring))
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
