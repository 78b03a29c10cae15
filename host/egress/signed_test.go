package egress

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// cloudImages stands in for cloud-images.ubuntu.com, which these machines
// cannot reach: a directory with an image, SHA256SUMS and SHA256SUMS.gpg,
// on the test's loopback. It counts the downloads of the image.
type cloudImages struct {
	mu    sync.Mutex
	files map[string][]byte // by path
	gets  atomic.Int32      // of the image
	delay time.Duration     // before serving the image
	url   string
}

const imagePath = "/noble/current/noble-server-cloudimg-amd64.squashfs"

func newCloudImages(t *testing.T, key *openpgp.Entity, image []byte) *cloudImages {
	t.Helper()
	ci := &cloudImages{files: map[string][]byte{}}
	ci.publish(t, key, image)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ci.mu.Lock()
		data, ok := ci.files[r.URL.Path]
		ci.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == imagePath {
			ci.gets.Add(1)
			time.Sleep(ci.delay)
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	ci.url = srv.URL
	return ci
}

// publish puts image in place with sums signed by key.
func (ci *cloudImages) publish(t *testing.T, key *openpgp.Entity, image []byte) {
	t.Helper()
	sum := sha256.Sum256(image)
	sums := []byte(hex.EncodeToString(sum[:]) + " *noble-server-cloudimg-amd64.squashfs\n" +
		strings.Repeat("0", 64) + " *noble-server-cloudimg-arm64.squashfs\n")
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, key, bytes.NewReader(sums), nil); err != nil {
		t.Fatal(err)
	}
	ci.set(imagePath, image)
	ci.set("/noble/current/SHA256SUMS", sums)
	ci.set("/noble/current/SHA256SUMS.gpg", sig.Bytes())
}

func (ci *cloudImages) set(path string, data []byte) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	ci.files[path] = data
}

func (ci *cloudImages) hostport() string { return strings.TrimPrefix(ci.url, "http://") }

func testKey(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", name+"@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// signedProxy serves the cloud images as a signed source checked with
// trusted, with the cache in dir.
func signedProxy(t *testing.T, ci *cloudImages, trusted *openpgp.Entity, dir string, offline bool) (string, *syncBuffer) {
	t.Helper()
	return startProxy(t, Options{
		Cache:   &Cache{Dir: dir},
		Policy:  Policy{AllowNet: rules(t, ci.hostport())},
		Signed:  []SignedSource{{Prefix: ci.url + "/", Keyring: openpgp.EntityList{trusted}, KeyName: "the test's cloud image key"}},
		Offline: offline,
	}, nil, loopbackDial(t))
}

func TestSignedImageIsCheckedAndCachedOnce(t *testing.T) {
	key := testKey(t, "cloud")
	image := bytes.Repeat([]byte("squashfs"), 1<<16)
	ci := newCloudImages(t, key, image)
	dir := filepath.Join(t.TempDir(), "cache")
	sock, _ := signedProxy(t, ci, key, dir, false)

	for i := range 2 {
		code, body := ask(t, sock, get(ci.hostport(), imagePath))
		if code != http.StatusOK || body != string(image) {
			t.Fatalf("GET %d: %d, %d bytes", i, code, len(body))
		}
	}
	if n := ci.gets.Load(); n != 1 {
		t.Errorf("the image was downloaded %d times, want once", n)
	}
	for _, name := range []string{"SHA256SUMS", "SHA256SUMS.gpg"} {
		code, body := ask(t, sock, get(ci.hostport(), "/noble/current/"+name))
		if code != http.StatusOK || body != string(ci.files["/noble/current/"+name]) {
			t.Errorf("GET %s: %d %q", name, code, body)
		}
	}
	code, body := ask(t, sock, get(ci.hostport(), "/noble/current/jammy.squashfs"))
	if code != http.StatusNotFound || !strings.Contains(body, "jammy.squashfs is not listed in the signed SHA256SUMS") {
		t.Errorf("a file not in the sums: %d %q", code, body)
	}
}

// Concurrent builds asking for the same image download it once: the
// second waits for the first's download and is served from the cache.
func TestSignedImageConcurrentDownloadOnce(t *testing.T) {
	key := testKey(t, "cloud")
	image := bytes.Repeat([]byte("img"), 1<<18)
	ci := newCloudImages(t, key, image)
	ci.delay = 500 * time.Millisecond
	dir := filepath.Join(t.TempDir(), "cache")
	// Two proxies on one cache, as two dibvm processes have.
	sockA, _ := signedProxy(t, ci, key, dir, false)
	sockB, _ := signedProxy(t, ci, key, dir, false)
	var wg sync.WaitGroup
	for _, sock := range []string{sockA, sockB} {
		wg.Go(func() {
			if code, body := ask(t, sock, get(ci.hostport(), imagePath)); code != http.StatusOK || body != string(image) {
				t.Errorf("GET: %d, %d bytes", code, len(body))
			}
		})
	}
	wg.Wait()
	if n := ci.gets.Load(); n != 1 {
		t.Errorf("the image was downloaded %d times by two concurrent builds, want once", n)
	}
}

// What does not match is refused with a message that names the file, and
// nothing of it enters the cache.
func TestSignedImageRefusals(t *testing.T) {
	key := testKey(t, "cloud")
	image := []byte("the real image")
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, ci *cloudImages)
		code   int // 403 for what failed a check, which curl does not retry
		want   string
	}{
		{"tampered image", func(t *testing.T, ci *cloudImages) {
			ci.set(imagePath, []byte("a tampered image"))
		}, 403, "noble-server-cloudimg-amd64.squashfs has SHA256 "},
		{"tampered SHA256SUMS", func(t *testing.T, ci *cloudImages) {
			sum := sha256.Sum256([]byte("a tampered image"))
			ci.set("/noble/current/SHA256SUMS", []byte(hex.EncodeToString(sum[:])+" *noble-server-cloudimg-amd64.squashfs\n"))
		}, 403, "SHA256SUMS.gpg: not a good signature of SHA256SUMS by the test's cloud image key"},
		{"signed by another key", func(t *testing.T, ci *cloudImages) {
			ci.publish(t, testKey(t, "mallory"), []byte("a tampered image"))
		}, 403, "SHA256SUMS.gpg: signed by a key that is not in the test's cloud image key"},
		{"signature missing", func(t *testing.T, ci *cloudImages) {
			ci.mu.Lock()
			delete(ci.files, "/noble/current/SHA256SUMS.gpg")
			ci.mu.Unlock()
		}, 502, "SHA256SUMS.gpg: the server says 404"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci := newCloudImages(t, key, image)
			c.tamper(t, ci)
			dir := filepath.Join(t.TempDir(), "cache")
			sock, notices := signedProxy(t, ci, key, dir, false)
			code, body := ask(t, sock, get(ci.hostport(), imagePath))
			if code != c.code || !strings.Contains(body, c.want) {
				t.Errorf("got %d %q, want %d with %q", code, body, c.code, c.want)
			}
			if !strings.Contains(notices.String(), c.want) {
				t.Errorf("the host was not told: %q", notices.String())
			}
			objects, _ := os.ReadDir(filepath.Join(dir, "signed", "sha256"))
			if len(objects) != 0 {
				t.Errorf("the cache holds %d images after a refusal", len(objects))
			}
		})
	}
}

// Offline, a build gets the image from the cache without any request to
// the server; with nothing cached it is told so.
func TestSignedImageOffline(t *testing.T) {
	key := testKey(t, "cloud")
	image := []byte(strings.Repeat("offline image ", 1000))
	ci := newCloudImages(t, key, image)
	dir := filepath.Join(t.TempDir(), "cache")

	sock, _ := signedProxy(t, ci, key, filepath.Join(t.TempDir(), "empty"), true)
	if code, body := ask(t, sock, get(ci.hostport(), imagePath)); code != http.StatusForbidden || !strings.Contains(body, "offline, and no SHA256SUMS for it in the image cache") {
		t.Errorf("offline with an empty cache: %d %q", code, body)
	}

	online, _ := signedProxy(t, ci, key, dir, false)
	if code, _ := ask(t, online, get(ci.hostport(), imagePath)); code != http.StatusOK {
		t.Fatalf("online: %d", code)
	}
	// The server now has a newer image that the cache does not hold: an
	// offline build must not ask for it.
	ci.publish(t, key, []byte("a newer image"))
	before := ci.gets.Load()
	offline, _ := startProxy(t, Options{
		Cache:   &Cache{Dir: dir},
		Policy:  Policy{AllowNet: rules(t, ci.hostport())},
		Signed:  []SignedSource{{Prefix: ci.url + "/", Keyring: openpgp.EntityList{key}, KeyName: "the test's cloud image key"}},
		Offline: true,
	}, nil, noDial(t))
	for _, p := range []string{imagePath, "/noble/current/SHA256SUMS", "/noble/current/SHA256SUMS.gpg"} {
		if code, body := ask(t, offline, get(ci.hostport(), p)); code != http.StatusOK {
			t.Errorf("offline GET %s: %d %q", p, code, body)
		} else if p == imagePath && body != string(image) {
			t.Errorf("offline GET %s: not the cached image", p)
		}
	}
	if ci.gets.Load() != before {
		t.Error("an offline build downloaded the image")
	}

	// What an earlier build fetched from a host this one may not reach
	// is refused, as its fetch would be, the same way whether kept or not.
	for _, pol := range []Policy{{}, {AllowOnly: rules(t, "deb.debian.org")}} {
		refusing, _ := startProxy(t, Options{
			Cache:   &Cache{Dir: dir},
			Policy:  pol,
			Signed:  []SignedSource{{Prefix: ci.url + "/", Keyring: openpgp.EntityList{key}, KeyName: "the test's cloud image key"}},
			Offline: true,
		}, nil, noDial(t))
		keptCode, keptBody := ask(t, refusing, get(ci.hostport(), imagePath))
		neverCode, neverBody := ask(t, refusing, get(ci.hostport(), "/noble/current/never.squashfs"))
		if keptCode != http.StatusForbidden || !strings.Contains(keptBody, "refused a connection from the helper VM to "+ci.hostport()) {
			t.Errorf("offline, with %+v: %d %q, want 403 refused", pol, keptCode, keptBody)
		}
		if keptCode != neverCode || strings.Replace(keptBody, imagePath, "", 1) != strings.Replace(neverBody, "/noble/current/never.squashfs", "", 1) {
			t.Errorf("offline, with %+v, a kept file is answered %d %q and one never kept %d %q: want the same", pol, keptCode, keptBody, neverCode, neverBody)
		}
	}
}

// A source can be fetched from elsewhere than the guest asked (Ubuntu's
// over HTTPS): the guest's URL is only a name.
func TestSignedImageFromUpstream(t *testing.T) {
	key := testKey(t, "cloud")
	image := []byte("an image from upstream")
	ci := newCloudImages(t, key, image)
	sock, _ := startProxy(t, Options{
		Cache:  &Cache{Dir: filepath.Join(t.TempDir(), "cache")},
		Policy: Policy{AllowNet: rules(t, ci.hostport())},
		Signed: []SignedSource{{Prefix: "http://cloud-images.example/", Upstream: ci.url + "/", Keyring: openpgp.EntityList{key}, KeyName: "the test key"}},
	}, nil, loopbackDial(t))
	if code, body := ask(t, sock, get("cloud-images.example", imagePath)); code != http.StatusOK || body != string(image) {
		t.Errorf("GET: %d %q", code, body)
	}
}

// Past the run's budget for the cache, a checked image is still served,
// but not kept.
func TestSignedImagePastBudget(t *testing.T) {
	key := testKey(t, "cloud")
	image := []byte("an image past the budget")
	ci := newCloudImages(t, key, image)
	dir := filepath.Join(t.TempDir(), "cache")
	cache := &Cache{Dir: dir}
	cache.added.Store(maxCacheAdd)
	sock, _ := startProxy(t, Options{
		Cache:  cache,
		Policy: Policy{AllowNet: rules(t, ci.hostport())},
		Signed: []SignedSource{{Prefix: ci.url + "/", Keyring: openpgp.EntityList{key}, KeyName: "the test key"}},
	}, nil, loopbackDial(t))
	if code, body := ask(t, sock, get(ci.hostport(), imagePath)); code != http.StatusOK || body != string(image) {
		t.Errorf("GET: %d %q", code, body)
	}
	if objects, _ := os.ReadDir(filepath.Join(dir, "signed", "sha256")); len(objects) != 0 {
		t.Errorf("the cache kept %d files past the budget", len(objects))
	}
}

// Past the cache's budget, a checked image is served from a temporary
// file for as long as the guest takes to read it. A guest that asks on
// many connections and reads nothing cannot make the host keep a copy
// for each: past maxPinned bytes in temporary files, a download is
// refused, saying why, and once the guest has read (or dropped) what it
// holds, it is served again.
func TestSignedImagePinnedBounded(t *testing.T) {
	key := testKey(t, "cloud")
	// Far more than a unix socket buffers, so that a guest that reads
	// nothing holds the proxy in the middle of the file.
	image := bytes.Repeat([]byte("pinned image "), 200<<10)
	ci := newCloudImages(t, key, image)
	cache := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	cache.added.Store(maxCacheAdd)
	sock := filepath.Join(t.TempDir(), "egress.sock")
	notices := &syncBuffer{}
	p, err := listenProxy(sock, Options{
		Cache:   cache,
		Policy:  Policy{AllowNet: rules(t, ci.hostport())},
		Signed:  []SignedSource{{Prefix: ci.url + "/", Keyring: openpgp.EntityList{key}, KeyName: "the test key"}},
		Notices: notices,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.own, p.lookup, p.dialContext = fakeOwn, (&fakeResolver{}).lookup, loopbackDial(t)
	p.maxPinned = int64(len(image)) * 3 / 2
	go p.serve()

	// The first guest connection gets its image and reads one byte.
	held, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(held, get(ci.hostport(), imagePath))
	resp, err := http.ReadResponse(bufio.NewReader(held), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the first GET: %v %v", resp, err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if n := p.pinned.Load(); n != int64(len(image)) {
		t.Errorf("%d bytes pinned while the guest holds one image of %d", n, len(image))
	}

	// Others are refused while it holds its copy, without a second one.
	for i := range 3 {
		code, body := ask(t, sock, get(ci.hostport(), imagePath))
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "in temporary files on the host") {
			t.Errorf("GET %d while one copy is held: %d %.200q, want 503 saying why", i+2, code, body)
		}
		if n := p.pinned.Load(); n > p.maxPinned {
			t.Errorf("%d bytes pinned, over the bound of %d", n, p.maxPinned)
		}
	}
	if !strings.Contains(notices.String(), "in temporary files on the host") {
		t.Errorf("the host was not told: %q", notices.String())
	}

	// Once the first connection is gone, its copy is too.
	held.Close()
	waitFor(t, func() bool { return p.pinned.Load() == 0 })
	if code, body := ask(t, sock, get(ci.hostport(), imagePath)); code != http.StatusOK || body != string(image) {
		t.Errorf("GET after the held one ended: %d, %d bytes", code, len(body))
	}
	waitFor(t, func() bool { return p.pinned.Load() == 0 })
}

// The names a guest asks for reach the user's terminal only as text: a
// notice quoting a file name (percent-decoded from the guest's URL)
// carries no control character, and a guest that asks for many names
// gets maxReports notices and one line saying no more are.
func TestSignedNoticesAreText(t *testing.T) {
	key := testKey(t, "cloud")
	ci := newCloudImages(t, key, []byte("an image"))
	sock, notices := signedProxy(t, ci, key, filepath.Join(t.TempDir(), "cache"), false)
	for _, name := range []string{
		"%1b]0;owned%07x.img",
		"%1b[2J%1b[Hclear.img",
		"%c2%9b31mc1.img",
		"%e2%80%aeevil.img",
		"cr%0dline.img",
	} {
		code, body := ask(t, sock, get(ci.hostport(), "/noble/current/"+name))
		if code != http.StatusNotFound || !strings.Contains(body, "is not listed in the signed SHA256SUMS") {
			t.Errorf("GET %s: %d %q", name, code, body)
		}
	}
	got := notices.String()
	for _, want := range []string{"^[]0;owned^Gx.img", "^[[2J^[[Hclear.img", `\u009b31mc1.img`, `\u202eevil.img`, "cr^Mline.img"} {
		if !strings.Contains(got, want) {
			t.Errorf("the notices do not show %q as text:\n%s", want, got)
		}
	}
	for _, r := range strings.TrimSuffix(got, "\n") {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e {
			t.Errorf("a control character %U reached the notices:\n%q", r, got)
			break
		}
	}
	for i := range maxReports + 20 {
		ask(t, sock, get(ci.hostport(), fmt.Sprintf("/noble/current/flood-%d.img", i)))
	}
	if n := strings.Count(notices.String(), "\n"); n != maxReports+1 {
		t.Errorf("%d notices for %d names asked for, want %d and one saying no more are", n, maxReports+25, maxReports+1)
	}
}
