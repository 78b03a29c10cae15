package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCacheDir(t *testing.T) {
	t.Setenv("DIBVM_CACHE_DIR", "/somewhere/else")
	if d, err := cacheDir(); err != nil || d != "/somewhere/else" {
		t.Errorf("with DIBVM_CACHE_DIR: %s, %v", d, err)
	}
	t.Setenv("DIBVM_CACHE_DIR", "")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "xdg"))
	want := filepath.Join(home, "xdg", "dibvm")
	if runtime.GOOS == "darwin" {
		want = filepath.Join(home, "Library", "Caches", "dibvm")
	}
	if d, err := cacheDir(); err != nil || d != want {
		t.Errorf("the user's cache: %s, %v; want %s", d, err, want)
	}
	if runtime.GOOS != "linux" {
		return
	}
	os.Unsetenv("HOME")
	os.Unsetenv("XDG_CACHE_HOME")
	want = "find the user cache directory: neither $XDG_CACHE_HOME nor $HOME are defined (set DIBVM_CACHE_DIR)"
	if d, err := cacheDir(); err == nil || err.Error() != want {
		t.Errorf("without HOME: %s, %v; want the error %q", d, err, want)
	}
}
