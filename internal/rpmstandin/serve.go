package rpmstandin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// Serve serves dir over HTTP on 127.0.0.1 until the test ends and
// returns its base URL, without a trailing slash.
func Serve(t testing.TB, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// CentOSKeyPath is where centos-stream-repos' .repo files expect the
// key that signs CentOS's packages, and where the stand-in's
// centos-gpg-keys puts the test key.
const CentOSKeyPath = "/etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial"

// WriteRepos writes dir, a yum.repos.d directory with one repository,
// the stand-in at baseURL, checked as CentOS's are: package and
// metadata signatures both, against the key at CentOSKeyPath. It is
// what a build's DIB_YUM_MINIMAL_BOOTSTRAP_REPOS names.
//
// yum-minimal reads the key from the new root only for its install
// (it rewrites the path to $TARGET_ROOT's); its first download, of
// the release packages with yumdownloader, reads this path where it
// runs, so a build against the stand-in must have the key there too.
func WriteRepos(dir, baseURL string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	repo := fmt.Sprintf(`[baseos]
name=CentOS Stream $releasever - BaseOS (dibvm's stand-in)
baseurl=%s
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://%s
`, baseURL, CentOSKeyPath)
	return os.WriteFile(filepath.Join(dir, "standin.repo"), []byte(repo), 0o644)
}
