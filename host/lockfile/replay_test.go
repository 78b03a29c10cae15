package lockfile

import (
	"net/url"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// A lock read back pins each file it names: by its URL, or on another
// mirror of its archive (a snapshot mirror) by its place in the archive,
// unless two archives in the lock hold different files there; it pins
// the suites' release files it recorded, and nothing else.
func TestPinsOfALockReadBack(t *testing.T) {
	hello := download(mirror+"/pool/main/h/hello/hello_2.10-3_amd64.deb", "hello")
	plus := download(mirror+"/pool/main/libs/libstdc%2B%2B6_12_amd64.deb", "libstdc++")
	release := download(mirror+"/dists/bookworm/InRelease", "the suite")
	security := download("http://deb.debian.org/debian-security/dists/bookworm/InRelease", "security")
	// debootstrap installed 2.10-2, which an upgrade replaced.
	older := download(mirror+"/pool/main/h/hello/hello_2.10-2_amd64.deb", "hello, older")
	downloads := []Download{hello, plus, release, security, older}
	l := Make([]api.Package{{Name: "hello", Version: "2.10-3", Arch: "amd64"}, {Name: "libstdc++6", Version: "12", Arch: "amd64"}}, downloads)
	if len(l.Releases) != 2 {
		t.Fatalf("releases recorded: %v", l.Releases)
	}
	if len(l.Superseded) != 1 || l.Superseded[0] != older {
		t.Fatalf("superseded downloads recorded: %v", l.Superseded)
	}
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Marshal(); string(again) != string(data) {
		t.Errorf("the lock read back is not the lock:\n%s\nwant\n%s", again, data)
	}
	pins := back.Pins("img.lock")
	snapshot := "http://snapshot.debian.org/archive/debian/20261201T000000Z"
	for _, tc := range []struct{ url, sum string }{
		{hello.URL, hello.SHA256},
		{snapshot + "/pool/main/h/hello/hello_2.10-3_amd64.deb", hello.SHA256},
		{mirror + "/pool/main/libs/libstdc++6_12_amd64.deb", plus.SHA256}, // escaped or not
		{older.URL, older.SHA256},
		{release.URL, release.SHA256},
		{security.URL, security.SHA256},
		{snapshot + "/dists/bookworm/InRelease", ""}, // two archives' dists/bookworm: by URL alone
		{mirror + "/pool/main/h/hello/hello_2.10-4_amd64.deb", ""},
		{mirror + "/dists/trixie/InRelease", ""},
	} {
		u, _ := url.Parse(tc.url)
		sum, err := pins(u)
		if sum != tc.sum || (tc.sum == "") != (err != nil) {
			t.Errorf("%s: pinned to %q (%v), want %q", tc.url, sum, err, tc.sum)
		}
		if err != nil && !strings.Contains(err.Error(), "img.lock") {
			t.Errorf("%s: the error does not name the lock file: %v", tc.url, err)
		}
	}
}

// A lock that cannot be replayed is refused before the build, saying why:
// packages without a file are listed.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"format":"dibvm-lock/0","packages":[]}`, `format "dibvm-lock/0"`},
		{`not json`, "not a lock file"},
		{`{"format":"dibvm-lock/1","packages":[],"extra":1}`, "not a lock file"},
		{`{"format":"dibvm-lock/1","packages":[{"name":"a","version":"1","architecture":"all"},{"name":"b","version":"2","architecture":"all","url":"http://x/pool/b_2_all.deb","sha256":"00"}]}`, "2 packages have no file to pin them to (the build that wrote it did not download them over plain HTTP through dibvm's proxy): a 1, b 2"},
		{`{"format":"dibvm-lock/1","packages":[],"releases":[{"url":"http://x/dists/bookworm/Packages","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`, "release file"},
		{`{"format":"dibvm-lock/1","packages":[],"releases":[{"url":"http://x/dists/bookworm/InRelease","size":2,"sha256":"` + strings.Repeat("0", 64) + `","content":"aGk="}]}`, "its content is not the file of its SHA-256"},
	} {
		_, err := Parse([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.40q): %v, want an error saying %q", tc.data, err, tc.want)
		}
	}
}
