package vmimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// standInMirror is a Debian mirror on the loopback, signed with a key
// made for the test, serving tiny packages: enough for a base with a
// kernel and for a layer over it.
type standInMirror struct {
	signer *openpgp.Entity
	srv    *httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	gets   map[string]int // downloads by file name
}

// debPackage is one package of the stand-in mirror: its control
// fields beyond the name, and its files.
type debPackage struct {
	name, version, fields string
	files                 map[string]string
}

func newStandInMirror(t *testing.T) *standInMirror {
	t.Helper()
	signer, err := openpgp.NewEntity("dibvm stand-in archive", "", "archive@example.invalid", &packet.Config{RSABits: 2048, Algorithm: packet.PubKeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	m := &standInMirror{signer: signer, files: map[string][]byte{}, gets: map[string]int{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		name := strings.TrimPrefix(r.URL.Path, "/debian/")
		data, ok := m.files[name]
		m.gets[name]++
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *standInMirror) url() string { return m.srv.URL + "/debian" }

func (m *standInMirror) downloads(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets[name]
}

// publish replaces what the mirror serves with pkgs, under a signed
// InRelease.
func (m *standInMirror) publish(t *testing.T, pkgs []debPackage) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var index strings.Builder
	for _, p := range pkgs {
		deb := debFile(t, p.files)
		fn := fmt.Sprintf("pool/main/%s_%s_amd64.deb", p.name, p.version)
		m.files[fn] = deb
		fmt.Fprintf(&index, "Package: %s\nVersion: %s\nArchitecture: amd64\n%sFilename: %s\nSize: %d\nSHA256: %s\n\n",
			p.name, p.version, p.fields, fn, len(deb), sha256Hex(deb))
	}
	var packagesXZ bytes.Buffer
	zw, _ := xz.NewWriter(&packagesXZ)
	io.WriteString(zw, index.String())
	zw.Close()
	m.files["dists/stable/main/binary-amd64/Packages.xz"] = packagesXZ.Bytes()
	release := fmt.Sprintf("Origin: Test\nSuite: stable\nCodename: trixie\nDate: Sun, 01 Nov 2026 00:00:00 UTC\nSHA256:\n %s %d main/binary-amd64/Packages.xz\n",
		sha256Hex(packagesXZ.Bytes()), packagesXZ.Len())
	var signed bytes.Buffer
	w, err := clearsign.Encode(&signed, m.signer.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, release)
	w.Close()
	m.files["dists/stable/InRelease"] = signed.Bytes()
}

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// debFile is a .deb (an ar archive) whose data.tar.gz holds files,
// each path to its content.
func debFile(t *testing.T, files map[string]string) []byte {
	t.Helper()
	tarGz := func(files map[string]string) []byte {
		var buf bytes.Buffer
		gw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gw)
		// In a fixed order: the same package published again is the
		// same file, as on a real mirror.
		for _, name := range slices.Sorted(maps.Keys(files)) {
			body := files[name]
			if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, body)
		}
		tw.Close()
		gw.Close()
		return buf.Bytes()
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, member := range []struct {
		name string
		data []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar.gz", tarGz(map[string]string{"control": "Package: t\nVersion: 1\nArchitecture: amd64\nMaintainer: x\nDescription: a stand-in\n"})},
		{"data.tar.gz", tarGz(files)},
	} {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", member.name, 0, 0, 0, 0o644, len(member.data))
		ar.Write(member.data)
		if len(member.data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes()
}

// standInDistribution is a base (a kernel, base-passwd, bash) and what a
// layer over it installs (rpm and its library; perl, which the layer
// leaves out), at rpm's version.
func standInDistribution(rpmVersion string) []debPackage {
	return []debPackage{
		{"linux-image-amd64", "6.12", "Depends: linux-image-6.12-amd64\n", nil},
		{"linux-image-6.12-amd64", "6.12", "", map[string]string{"boot/vmlinuz-6.12-amd64": "a kernel"}},
		{"base-passwd", "3.6", "Essential: yes\n", map[string]string{
			"usr/share/base-passwd/passwd.master": "root:*:0:0:root:/root:/bin/sh\n",
			"usr/share/base-passwd/group.master":  "root:*:0:\n",
		}},
		{"bash", "5.2", "Essential: yes\nDepends: libc6\n", map[string]string{"usr/bin/bash": "bash"}},
		{"libc6", "2.41", "", map[string]string{"usr/lib/x86_64-linux-gnu/libc.so.6": "libc"}},
		{"perl", "5.40", "Depends: libc6\n", map[string]string{"usr/bin/perl": "perl"}},
		{"librpm10", rpmVersion, "Depends: libc6\n", map[string]string{"usr/lib/x86_64-linux-gnu/librpm.so.10": "librpm " + rpmVersion}},
		{"rpm", rpmVersion, "Depends: libc6, librpm10 (= " + rpmVersion + "), perl:any\n", map[string]string{
			"usr/bin/rpm": "rpm " + rpmVersion,
			// What the base's configure owns stays the base's.
			"etc/passwd": "rpm's passwd",
		}},
	}
}

func (m *standInMirror) requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.gets {
		n += c
	}
	return n
}
