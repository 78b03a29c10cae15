package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cache du, ls and prune over a cache directory of the test's own: an
// appliance no dibvm of this build uses, package downloads old and new.
func TestCacheCommands(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	t.Setenv("HOME", home) // macOS's cache directory is under it
	t.Setenv("DIB_IMAGE_CACHE", "")
	t.Setenv("DIBVM_CHECKPOINTS_DIR", "")
	t.Setenv("DIBVM_TIMINGS_DIR", "")
	userCache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	// The image cache is in the user's cache directory, the rest in
	// DIBVM_CACHE_DIR: here one place.
	dir := filepath.Join(userCache, "dibvm")
	t.Setenv("DIBVM_CACHE_DIR", dir)
	write := func(path string, size int, age time.Duration) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, make([]byte, size), 0o644)
		then := time.Now().Add(-age)
		os.Chtimes(path, then, then)
	}
	write(filepath.Join(dir, "appliance", "0123456789abcdef-0123456789abcdef", "initrd.img"), 3<<20, 0)
	old := filepath.Join(dir, "image-create", strings.Repeat("ab", 16)+"_bash_5.2.37-2_amd64.deb")
	young := filepath.Join(dir, "debs", strings.Repeat("cd", 32)+"-zlib1g_1.3.dfsg-3_arm64.deb")
	write(old, 1<<20, 40*24*time.Hour)
	write(young, 2<<20, time.Hour)
	// What else may be in DIB_IMAGE_CACHE (DIB's own): never dibvm's.
	foreign := []string{
		filepath.Join(dir, "image-create", "source-repositories", "repo_x", ".git", "objects", "ab", "cdef"),
		filepath.Join(dir, "image-create", "ubuntu-noble.tar.gz"),
		filepath.Join(dir, "image-create", ".download-123"),
	}
	for _, f := range foreign {
		write(f, 10, 400*24*time.Hour)
	}

	// Columns as words, whatever their padding.
	words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	du := words(execute(t, "dibvm", "cache", "du"))
	for _, want := range []string{"appliance 3.0 MiB 1 ", "packages 3.0 MiB 5 ", "checkpoints 0 B 0 ", "total 6.0 MiB"} {
		if !strings.Contains(du, want) {
			t.Errorf("cache du lacks %q:\n%s", want, du)
		}
	}
	ls := words(execute(t, "dibvm", "cache", "ls"))
	for _, want := range []string{"appliance/0123456789abcdef-0123456789abcdef 3.0 MiB", "no (cache prune removes it)", "5 package downloads, 3.0 MiB", "No checkpoints in "} {
		if !strings.Contains(ls, want) {
			t.Errorf("cache ls lacks %q:\n%s", want, ls)
		}
	}
	prune := execute(t, "dibvm", "cache", "prune")
	for _, want := range []string{"Removed 0 checkpoints", "Removed 1 appliances, bases and tool layers this dibvm does not use, 3 MiB", "Removed 1 package downloads older than 30d, 1 MiB"} {
		if !strings.Contains(prune, want) {
			t.Errorf("cache prune lacks %q:\n%s", want, prune)
		}
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("cache prune removed a download younger than --package-max-age")
	}
	execute(t, "dibvm", "cache", "prune", "--all")
	for _, f := range []string{old, young} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("cache prune --all left %s", f)
		}
	}
	for _, f := range foreign {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("cache prune removed %s, which is not a download of dibvm's", f)
		}
	}
}

// What a checkpoint recorded from the guest (its APT suites, which any
// hook can write) is shown by cache ls as text that cannot drive the
// terminal, even from a store written before Publish checked it.
func TestCacheLsShowsGuestTextSafely(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	t.Setenv("HOME", home)
	t.Setenv("DIBVM_CACHE_DIR", filepath.Join(home, "dibvm"))
	store := filepath.Join(home, "checkpoints")
	t.Setenv("DIBVM_CHECKPOINTS_DIR", store)
	os.MkdirAll(store, 0o700)
	key := strings.Repeat("ab", 32)
	meta := `{"key": "` + key + `", "phase": "root.d", "layer": "` + strings.Repeat("cd", 16) + `.qcow2",
		"made": "2024-01-01T00:00:00Z", "elements": ["vm", "evil\u202eexe"],
		"suites": [{"name": "bookworm\u001b]0;title\u0007", "date": "\u001b[2J\u001b[H\u009b31m\u202eSat"}]}`
	if err := os.WriteFile(filepath.Join(store, key+".json"), []byte(meta), 0o600); err != nil {
		t.Fatal(err)
	}
	ls := execute(t, "dibvm", "cache", "ls")
	if !strings.Contains(ls, "bookworm^[]0;title^G ^[[2J^[[H\\u009b31m\\u202eSat") {
		t.Errorf("cache ls does not show the suites, escaped:\n%s", ls)
	}
	for _, raw := range []string{"\x1b", "\x07", "\u009b", "\u202e"} {
		if strings.Contains(ls, raw) {
			t.Errorf("cache ls printed %q raw:\n%q", raw, ls)
		}
	}
}
