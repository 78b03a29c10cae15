package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func TestAptSuites(t *testing.T) {
	tree := t.TempDir()
	lists := filepath.Join(tree, "var/lib/apt/lists")
	if err := os.MkdirAll(lists, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"deb.debian.org_debian_dists_bookworm_InRelease":                      "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nDate: Sat, 08 Nov 2025 09:54:22 UTC\n",
		"security.debian.org_debian-security_dists_bookworm-security_Release": "Origin: Debian\nDate: Wed, 05 Nov 2025 12:00:00 UTC\n",
		"deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages":     "Package: x\n",
		"deb.debian.org_debian_dists_bookworm-updates_InRelease":              "Origin: Debian\nNo date here\n",
	} {
		if err := os.WriteFile(filepath.Join(lists, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := aptSuites(tree)
	want := []api.Suite{
		{Name: "deb.debian.org/debian/dists/bookworm", Date: "Sat, 08 Nov 2025 09:54:22 UTC"},
		{Name: "security.debian.org/debian-security/dists/bookworm-security", Date: "Wed, 05 Nov 2025 12:00:00 UTC"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("aptSuites = %+v\nwant %+v", got, want)
	}
	if got := aptSuites(t.TempDir()); got != nil {
		t.Errorf("a tree without APT lists: %+v", got)
	}
}
