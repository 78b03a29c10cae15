package egress

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A request for a service's name goes to the service, on the host,
// without a lookup or a connection; what the service fetches goes
// through the policy like the guest's own requests, and a package it
// fetched is kept in the cache.
func TestProxyServices(t *testing.T) {
	pkgs := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".deb") {
			pkgs++
		}
		io.WriteString(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	cache := &Cache{Dir: t.TempDir()}

	// The service fetches what the guest names in its query and answers
	// with what it got, or the error.
	svc := func(req *http.Request, fetch func(ctx context.Context, url, sum string) (io.ReadCloser, error)) *http.Response {
		body, err := fetch(req.Context(), req.URL.Query().Get("u"), req.URL.Query().Get("sum"))
		text := ""
		if err != nil {
			text = "error: " + err.Error()
		} else {
			b, _ := io.ReadAll(body)
			body.Close()
			text = string(b)
		}
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(len(text)),
			Body: io.NopCloser(strings.NewReader(text)), Close: true}
	}
	res := &fakeResolver{}
	for _, tc := range []struct {
		name   string
		policy Policy
		want   string
	}{
		{"closed", Policy{}, "refused a connection from the helper VM to " + hostport},
		{"opened", Policy{AllowNet: rules(t, hostport)}, "upstream /debian/pool/main/a/a_1_all.deb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dial := loopbackDial(t)
			if tc.policy.AllowNet == nil {
				dial = noDial(t)
			}
			sock, _ := startProxy(t, Options{Cache: cache, Policy: tc.policy, Services: map[string]Service{"svc.invalid": svc}}, res, dial)
			u := srv.URL + "/debian/pool/main/a/a_1_all.deb"
			code, body := ask(t, sock, get("SVC.invalid", "/x?u="+u))
			if code != 200 || !strings.Contains(body, tc.want) {
				t.Errorf("%d %q, want 200 %q", code, body, tc.want)
			}
		})
	}
	if res.wasAsked("svc.invalid") || res.wasAsked("SVC.invalid") {
		t.Error("the proxy looked up the service's name")
	}
	// The package was fetched once and is in the cache now: a second
	// fetch through the service comes from there.
	sock, _ := startProxy(t, Options{Cache: cache, Policy: Policy{AllowNet: rules(t, hostport)}, Services: map[string]Service{"svc.invalid": svc}}, res, loopbackDial(t))
	if code, body := ask(t, sock, get("svc.invalid", "/x?u="+srv.URL+"/debian/pool/main/a/a_1_all.deb")); code != 200 || body != "upstream /debian/pool/main/a/a_1_all.deb" {
		t.Errorf("from the cache: %d %q", code, body)
	}
	if pkgs != 1 {
		t.Errorf("the package was fetched %d times, want once", pkgs)
	}
	left, _ := filepath.Glob(filepath.Join(cache.Dir, ".download-*"))
	if entries, _ := os.ReadDir(cache.Dir); len(entries) != 1 || len(left) != 0 {
		t.Errorf("cache holds %d entries and %d temporary files, want 1 and 0", len(entries), len(left))
	}
}

// With a sum, Fetch keeps only a file that matches it, and a cached file
// that does not is fetched again.
func TestFetchKeepsOnlyMatchingFiles(t *testing.T) {
	body := "the package"
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	fetched := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched++
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	cache := &Cache{Dir: t.TempDir()}
	sock := filepath.Join(t.TempDir(), "egress.sock")
	p, err := listenProxy(sock, Options{Cache: cache, Policy: Policy{AllowNet: rules(t, hostport)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.own, p.lookup, p.dialContext = fakeOwn, (&fakeResolver{}).lookup, loopbackDial(t)
	u := srv.URL + "/debian/pool/main/p/p_1_all.deb"
	read := func(want string) string {
		t.Helper()
		r, err := p.Fetch(context.Background(), u, want)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		return string(b)
	}
	entry := cache.file(mustURL(t, u))
	if got := read(strings.Repeat("0", 64)); got != body {
		t.Errorf("read %q", got)
	}
	if _, err := os.Stat(entry); err == nil {
		t.Error("a file that does not match its sum was kept")
	}
	read(sum)
	if _, err := os.Stat(entry); err != nil {
		t.Errorf("a file that matches its sum was not kept: %v", err)
	}
	if err := os.WriteFile(entry, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := read(sum); got != body || fetched != 3 {
		t.Errorf("a cached file that does not match: read %q after %d fetches, want it fetched again (3)", got, fetched)
	}
	read(sum)
	if fetched != 3 {
		t.Errorf("fetched %d times, want the fourth read from the cache", fetched)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
