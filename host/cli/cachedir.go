package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// cacheDir is where dibvm keeps the helper appliance and the other caches:
// $XDG_CACHE_HOME/dibvm (~/.cache/dibvm) on Linux and
// ~/Library/Caches/dibvm on macOS, or DIBVM_CACHE_DIR. It is read here,
// where the process environment is, and handed down.
func cacheDir() (string, error) {
	if d := os.Getenv("DIBVM_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory: %w (set DIBVM_CACHE_DIR)", err)
	}
	return filepath.Join(d, "dibvm"), nil
}
