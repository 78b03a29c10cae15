package lockfile

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/dibvm/dibvm/guestagent/api"
)

const mirror = "http://deb.debian.org/debian"

func download(u, body string) Download {
	sum := sha256.Sum256([]byte(body))
	return Download{URL: u, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
}

// Each installed package is joined to the file it was installed from by
// the name its archive gives that file: Debian's pool drops the epoch,
// rpm's files never hold it; a package installed another way, or whose
// file name was downloaded as two different files, stands with no
// download.
func TestMakeJoinsPackagesToTheirFiles(t *testing.T) {
	zlib := download(mirror+"/pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", "zlib")
	base := download(mirror+"/pool/main/b/base-files/base-files_12.4%2Bdeb12u8_amd64.deb", "base")
	bash := download("http://mirror.example/fedora/releases/40/Everything/x86_64/os/Packages/b/bash-5.2.26-3.fc40.x86_64.rpm", "bash")
	other := download(mirror+"/pool/main/z/zlib/zlib1g_1.2.12-1_amd64.deb", "an older zlib")
	decoy := download("http://0.example/pool/main/s/sed/sed_4.9-1_amd64.deb", "not sed")
	sed := download(mirror+"/pool/main/s/sed/sed_4.9-1_amd64.deb", "sed")
	var r Recorder
	r.Add([]Download{zlib, base})
	r.Served(bash.URL, bash.Size, bash.SHA256)
	r.Served(other.URL, other.Size, other.SHA256)
	r.Served(decoy.URL, decoy.Size, decoy.SHA256)
	r.Served(sed.URL, sed.Size, sed.SHA256)
	installed := []api.Package{
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64"},
		{Name: "bash", Version: "5.2.26-3.fc40", Arch: "x86_64"},
		{Name: "base-files", Version: "12.4+deb12u8", Arch: "amd64"},
		{Name: "local-tool", Version: "1.0", Arch: "all"},
		{Name: "sed", Version: "4.9-1", Arch: "amd64"},
	}
	// (as the indexes would give them: see TestSuitesFromTheIndexesRead)
	r.got[zlib.URL] = Download{URL: zlib.URL, Size: zlib.Size, SHA256: zlib.SHA256, Suite: "bookworm"}
	r.got[base.URL] = Download{URL: base.URL, Size: base.Size, SHA256: base.SHA256, Suite: "bookworm-security"}
	l := Make(installed, r.Downloads())
	want := []Package{
		{Name: "base-files", Version: "12.4+deb12u8", Arch: "amd64", URL: base.URL, Size: base.Size, SHA256: base.SHA256, Archive: mirror, Suite: "bookworm-security"},
		{Name: "bash", Version: "5.2.26-3.fc40", Arch: "x86_64", URL: bash.URL, Size: bash.Size, SHA256: bash.SHA256, Archive: "http://mirror.example/fedora/releases/40/Everything/x86_64/os"},
		{Name: "local-tool", Version: "1.0", Arch: "all"},
		{Name: "sed", Version: "4.9-1", Arch: "amd64"}, // two files of its name
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64", URL: zlib.URL, Size: zlib.Size, SHA256: zlib.SHA256, Archive: mirror, Suite: "bookworm"},
	}
	if !slices.Equal(l.Packages, want) {
		t.Errorf("got\n%+v\nwant\n%+v", l.Packages, want)
	}
	if l.Recorded() != 3 {
		t.Errorf("Recorded() = %d, want 3", l.Recorded())
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back Lock
	if err := json.Unmarshal(b, &back); err != nil || back.Format != Format || !slices.Equal(back.Packages, want) {
		t.Errorf("the lock file does not read back: %v\n%s", err, b)
	}
}

// An image with nothing installed has a lock file with no packages,
// not a null.
func TestMakeOfNothing(t *testing.T) {
	b, _ := Make(nil, nil).Marshal()
	if !bytes.Contains(b, []byte(`"packages": []`)) {
		t.Errorf("%s", b)
	}
}

const packagesIndex1 = `Package: zlib1g
Version: 1:1.2.13.dfsg-1
Filename: pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb

Package: tzdata
Version: 2024a-0+deb12u1
Filename: pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb
`

const packagesIndex2 = `Package: tzdata
Version: 2024b-0+deb12u1
Filename: pool/main/t/tzdata/tzdata_2024b-0+deb12u1_all.deb
`

// The suite of each package file is that of the Packages index that
// listed it, read compressed or not, and only if the cache still holds
// what the build downloaded; the name as the index gives it, escaped or
// not in the URL.
func TestSuitesFromTheIndexesRead(t *testing.T) {
	var xzd, gzd bytes.Buffer
	w, _ := xz.NewWriter(&xzd)
	io.WriteString(w, packagesIndex1)
	w.Close()
	g := gzip.NewWriter(&gzd)
	io.WriteString(g, packagesIndex2)
	g.Close()
	files := map[string]string{
		mirror + "/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hashOf(xzd.String()):         xzd.String(),
		mirror + "/dists/bookworm-updates/main/binary-amd64/by-hash/SHA256/" + hashOf(gzd.String()): gzd.String(),
		mirror + "/dists/trixie/main/binary-amd64/Packages":                                         "Filename: pool/main/t/tzdata/tzdata_2025a_all.deb\n",
		mirror + "/dists/sid/main/binary-amd64/Packages.xz":                                         "changed since",
	}
	r := &Recorder{Open: func(u, _ string) (io.ReadCloser, error) {
		body, ok := files[u]
		if !ok {
			return nil, errors.New("not kept")
		}
		return io.NopCloser(bytes.NewReader([]byte(body))), nil
	}}
	for u, body := range files {
		d := download(u, body)
		r.Served(d.URL, d.Size, d.SHA256)
	}
	// The build downloads its packages after its indexes; an index that
	// changed in the cache since is not read.
	files[mirror+"/dists/sid/main/binary-amd64/Packages.xz"] = "Filename: pool/main/t/tzdata/tzdata_2099_all.deb\n"
	r.Downloads()
	for _, f := range []string{"z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", "t/tzdata/tzdata_2024a-0+deb12u1_all.deb", "t/tzdata/tzdata_2024b-0%2bdeb12u1_all.deb", "t/tzdata/tzdata_2025a_all.deb", "t/tzdata/tzdata_2099_all.deb", "h/hello/hello_1_all.deb"} {
		d := download(mirror+"/pool/main/"+f, "a package")
		r.Served(d.URL, d.Size, d.SHA256)
	}
	got := map[string]string{}
	for _, d := range r.Downloads() {
		if strings.Contains(d.URL, "/pool/") {
			got[d.URL] = d.Suite
		}
	}
	want := map[string]string{
		mirror + "/pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb":     "bookworm",
		mirror + "/pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb":   "bookworm",
		mirror + "/pool/main/t/tzdata/tzdata_2024b-0%2bdeb12u1_all.deb": "bookworm-updates",
		mirror + "/pool/main/t/tzdata/tzdata_2025a_all.deb":             "trixie",
		mirror + "/pool/main/t/tzdata/tzdata_2099_all.deb":              "", // its index changed in the cache
		mirror + "/pool/main/h/hello/hello_1_all.deb":                   "", // in no index read
	}
	for u, s := range want {
		if got[u] != s {
			t.Errorf("%s: suite %q, want %q", u, got[u], s)
		}
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
