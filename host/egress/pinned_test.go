package egress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// A build that replays a lock file gets the suite's release file as the
// recording build saw it, though the archive has moved on since; each
// package file only as the lock names it, checked whole before the guest
// gets a byte; and no file the lock does not name.
func TestPinsHoldTheBuildToTheLock(t *testing.T) {
	var mu sync.Mutex
	files := map[string]string{
		"/debian/dists/bookworm/InRelease":  "the suite as it was",
		"/debian/pool/main/a/a/a_1_all.deb": "package a",
		"/debian/pool/main/b/b/b_1_all.deb": "package b",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, ok := files[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	cache := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	policy := Policy{AllowNet: rules(t, hostport)}

	// The recording build: apt asks with a condition, and is answered in
	// full all the same.
	recorded := map[string]string{}
	o := Options{Cache: cache, Policy: policy, Served: func(u string, _ int64, sum string) {
		mu.Lock()
		defer mu.Unlock()
		recorded[strings.TrimPrefix(u, srv.URL+"/debian/")] = sum
	}}
	sock, _ := startProxy(t, o, nil, loopbackDial(t))
	conditional := "GET " + srv.URL + "/debian/dists/bookworm/InRelease HTTP/1.1\r\nHost: " + hostport + "\r\nIf-Modified-Since: Mon, 07 Dec 2026 00:00:00 GMT\r\n\r\n"
	if code, b := ask(t, sock, conditional); code != http.StatusOK || b != files["/debian/dists/bookworm/InRelease"] {
		t.Fatalf("recording: GET InRelease: %d %q", code, b)
	}
	// A suite the archive has not: its 404 passed on, for apt to ask
	// for Release as it does, and nothing recorded.
	if code, _ := ask(t, sock, get(hostport, "/debian/dists/bookworm-backports/InRelease")); code != http.StatusNotFound {
		t.Errorf("recording: GET of a missing suite's InRelease: %d, want 404", code)
	}
	mu.Lock()
	if _, ok := recorded["dists/bookworm-backports/InRelease"]; ok {
		t.Error("a missing suite's InRelease was recorded")
	}
	lock := map[string]string{"dists/bookworm/InRelease": recorded["dists/bookworm/InRelease"], "pool/main/a/a/a_1_all.deb": sha("package a"), "pool/main/b/b/b_1_all.deb": sha("package b")}
	// The archive moves on; b is (wrongly) replaced under its name.
	files["/debian/dists/bookworm/InRelease"] = "the suite now"
	files["/debian/pool/main/b/b/b_1_all.deb"] = "package b, changed"
	files["/debian/pool/main/c/c/c_1_all.deb"] = "package c"
	mu.Unlock()
	if lock["dists/bookworm/InRelease"] != sha("the suite as it was") {
		t.Fatalf("the release file was not recorded: %v", recorded)
	}

	pins := func(u *url.URL) (string, error) {
		sum, ok := lock[strings.TrimPrefix(u.Path, "/debian/")]
		if !ok {
			return "", errors.New("not in the lock")
		}
		return sum, nil
	}
	replay := Options{Cache: cache, Policy: policy, Pins: pins}
	sock, notices := startProxy(t, replay, nil, loopbackDial(t))
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/debian/dists/bookworm/InRelease", "the suite as it was", http.StatusOK},
		{"/debian/pool/main/a/a/a_1_all.deb", "package a", http.StatusOK},
		{"/debian/pool/main/b/b/b_1_all.deb", "", http.StatusForbidden},
		{"/debian/pool/main/c/c/c_1_all.deb", "", http.StatusForbidden},
		{"/debian/dists/bookworm-backports/InRelease", "", http.StatusNotFound}, // as it was
	} {
		code, b := ask(t, sock, get(hostport, tc.path))
		if code != tc.code || (tc.code == http.StatusOK && b != tc.body) {
			t.Errorf("replay: GET %s: %d %q, want %d %q", tc.path, code, b, tc.code, tc.body)
		}
	}
	for _, want := range []string{"b_1_all.deb has SHA256 " + sha("package b, changed") + ", but the lock file says " + sha("package b"), "c_1_all.deb: not in the lock"} {
		if !strings.Contains(notices.String(), want) {
			t.Errorf("the notices do not say %q:\n%s", want, notices)
		}
	}
	if _, err := os.Stat(cache.object(sha("package b"))); err == nil {
		t.Error("the changed package was kept as the lock's")
	}
	// Neither credentials, nor a query, nor a place outside pool/ make a
	// package file one the lock does not hold to.
	for _, raw := range []string{
		get(hostport, "/debian/pool/main/c/c/c_1_all.deb?x=1"),
		"GET " + srv.URL + "/debian/pool/main/c/c/c_1_all.deb HTTP/1.1\r\nHost: " + hostport + "\r\nAuthorization: Basic eDp5\r\n\r\n",
		get(hostport, "/debian/elsewhere/c_1_all.deb"),
	} {
		if code, _ := ask(t, sock, raw); code != http.StatusForbidden {
			t.Errorf("replay: %q: %d, want 403", strings.SplitN(raw, "\r\n", 2)[0], code)
		}
	}

	// A service (debootstrap's) gets the same files through Fetch.
	p, err := listenProxy(filepath.Join(t.TempDir(), "egress.sock"), replay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.own, p.lookup, p.dialContext = fakeOwn, (&fakeResolver{}).lookup, loopbackDial(t)
	r, err := p.Fetch(context.Background(), srv.URL+"/debian/dists/bookworm/InRelease", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "the suite as it was" {
		t.Errorf("Fetch of InRelease: %q", b)
	}
	if _, err := p.Fetch(context.Background(), srv.URL+"/debian/pool/main/c/c/c_1_all.deb", ""); err == nil {
		t.Error("Fetch of a package not in the lock: no error")
	}

	// Pins without a cache to hold them are refused.
	if _, err := New(Options{Pins: pins}); err == nil {
		t.Error("New: pins without a cache: no error")
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
