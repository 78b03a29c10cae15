package sourcecache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const name = "my_app_0123456789abcdef0123456789abcdef01234567.bundle"

func do(t *testing.T, svc func(*http.Request) *http.Response, method, path, body string) (int, string) {
	t.Helper()
	resp := svc(httptest.NewRequest(method, "http://dibvm.invalid"+path, strings.NewReader(body)))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// What a build keeps, a later build gets back; nothing else is answered.
func TestKeepAndGet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), Dir)
	svc := Service(dir)
	if code, _ := do(t, svc, "GET", "/source-repositories/"+name, ""); code != http.StatusNotFound {
		t.Errorf("GET before PUT: %d", code)
	}
	if code, body := do(t, svc, "PUT", "/source-repositories/"+name, "bundle bytes"); code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := do(t, Service(dir), "GET", "/source-repositories/"+name, ""); code != http.StatusOK || body != "bundle bytes" {
		t.Errorf("GET in the next build: %d %q", code, body)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the cache holds %v, want the one file and no temporary", entries)
	}
	for _, path := range []string{
		"/source-repositories/../../etc/passwd",
		"/source-repositories/" + strings.TrimSuffix(name, ".bundle") + ".sh",
		"/source-repositories/.keep-1",
		"/source-repositories/x/" + name,
		"/other/" + name,
	} {
		if code, _ := do(t, svc, "PUT", path, "x"); code != http.StatusNotFound {
			t.Errorf("PUT %s: %d, want 404", path, code)
		}
	}
	if code, _ := do(t, svc, "DELETE", "/source-repositories/"+name, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", code)
	}
}

// A build keeps no more than its bound, and what goes past it is not
// kept at all.
func TestBound(t *testing.T) {
	dir := t.TempDir()
	s := &service{dir: dir, kept: MaxBuild - 4}
	if err := s.put(name, strings.NewReader("12345")); err == nil || !strings.Contains(err.Error(), "MiB a build keeps") {
		t.Errorf("past the bound: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("past the bound, the cache holds %v", entries)
	}
}

// What a killed dibvm left half kept is swept by a later build, and what
// a build keeps now is not.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	old, now := filepath.Join(dir, ".keep-1"), filepath.Join(dir, ".keep-2")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(now, []byte("x"), 0o600)
	os.Chtimes(old, time.Now().Add(-2*staleAfter), time.Now().Add(-2*staleAfter))
	Service(dir)
	if _, err := os.Stat(old); err == nil {
		t.Error("a stale file is left")
	}
	if _, err := os.Stat(now); err != nil {
		t.Errorf("a file being kept is gone: %v", err)
	}
}
