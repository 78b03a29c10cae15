package checkpoint

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Bounds on what a checkpoint reports of the tree's APT suites.
const (
	maxSuites    = 32
	maxSuiteName = 200
)

// aptSuites reads the Date of each Release file among the tree's APT
// lists: when the mirror made the package lists the tree was built from.
func aptSuites(tree string) []api.Suite {
	files, _ := filepath.Glob(filepath.Join(tree, "var/lib/apt/lists/*Release"))
	var out []api.Suite
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), "_InRelease"), "_Release")
		if name == filepath.Base(f) || len(out) == maxSuites {
			continue
		}
		date := releaseDate(f)
		if date == "" {
			continue
		}
		out = append(out, api.Suite{Name: shorten(strings.ReplaceAll(name, "_", "/"), maxSuiteName), Date: shorten(date, 64)})
	}
	return out
}

// releaseDate is the Date field of a Release file, signed or not.
func releaseDate(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for i := 0; s.Scan() && i < 64; i++ {
		if v, ok := strings.CutPrefix(s.Text(), "Date:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
