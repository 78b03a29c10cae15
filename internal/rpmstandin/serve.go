package rpmstandin

import (
	"net/http"
	"net/http/httptest"
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
// the stand-in at baseURL, checked as CentOS's own repositories are:
// every package's signature against the key at CentOSKeyPath, and the
// metadata by the checksums repomd.xml gives (CentOS does not sign
// repomd.xml; the stand-in does, for a build that asks with
// repo_gpgcheck). It is what a build's DIB_YUM_MINIMAL_BOOTSTRAP_REPOS
// names.
//
// yum-minimal's first download, of the release packages with
// yumdownloader, runs where no key is (the key comes in those
// packages), and checks no signature, as in DIB; its install into the
// new root reads the key from there (it rewrites the path to
// $TARGET_ROOT's), and so does every dnf run in the chroot.
func WriteRepos(dir, baseURL string) error {
	return writeRepo(dir, "baseos", "CentOS Stream $releasever - BaseOS (dibvm's stand-in)", baseURL, CentOSKeyPath)
}
