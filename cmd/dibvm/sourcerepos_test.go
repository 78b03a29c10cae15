package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// git runs the host's git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commitFile commits name with content in the checkout dir and returns
// the commit's ID.
func commitFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	git(t, dir, "add", name)
	git(t, dir, "commit", "-q", "-m", content)
	return git(t, dir, "rev-parse", "HEAD")
}

// sourceServer serves, on the host's loopback, the bare repositories in
// root over git's smart HTTP (git http-backend as a CGI program, as a
// git server runs it) under /git/, and the files in files under
// /files/: a stand-in for a git forge and a tarball server. It returns
// the base URL, a count of the requests, and a function that stops it.
func sourceServer(t *testing.T, root, files string) (string, *atomic.Int32, func()) {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", &cgi.Handler{Path: gitPath, Args: []string{"http-backend"}, Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(files))))
	hits := &atomic.Int32{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mux.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	t.Cleanup(stop)
	return "http://127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), hits, stop
}

// gitHTTPSServer serves the bare repositories in root over git's smart
// HTTP on TLS, on the host's loopback, with a certificate of its own
// (for 127.0.0.1) that no system trusts: a stand-in for a private git
// forge. It returns the base URL and a file holding the certificate in
// PEM, for GIT_SSL_CAINFO.
func gitHTTPSServer(t *testing.T, root string) (string, string) {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(&cgi.Handler{Path: gitPath, Args: []string{"http-backend"}, Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "forge-ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, block, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, ca
}

// tarball is a .tar.gz of files, each under top/.
func tarball(t *testing.T, top string, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: top + "/", Mode: 0o755, Typeflag: tar.TypeDir})
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: top + "/" + name, Mode: 0o644, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// stubInstallPackages is a root.d hook that gives tiny-os what
// source-repositories' package-installs and install need: a stub
// install-packages, install itself, and root in passwd and group.
const stubInstallPackages = `#!/bin/bash
set -eu
echo 'root:x:0:0:root:/root:/bin/sh' > "$TARGET_ROOT/etc/passwd"
echo 'root:x:0:' > "$TARGET_ROOT/etc/group"
mkdir -p "$TARGET_ROOT/usr/local/bin"
printf '#!/bin/sh\necho "install-packages stub: $*"\n' > "$TARGET_ROOT/usr/bin/install-packages"
chmod 755 "$TARGET_ROOT/usr/bin/install-packages"
p=$(command -v install)
cp "$p" "$TARGET_ROOT/usr/bin/"
for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
    mkdir -p "$TARGET_ROOT$(dirname "$lib")"
    [ -e "$TARGET_ROOT$lib" ] || cp "$lib" "$TARGET_ROOT$lib"
done
`

// sourceElement is an element that registers a source of every type, on
// tiny-os with a stub install-packages (for package-installs' git and
// curl).
func sourceElement(t *testing.T, base string) string {
	return elementtest.WriteTree(t, map[string]string{
		"app/element-deps": "source-repositories\n",
		// The guest's no_proxy names 127.0.0.1 for its own loopback; the
		// stand-in server is on the host's, reached through the proxy.
		"app/environment.d/10-test":  "export DISTRO_NAME=debian\nunset no_proxy NO_PROXY\n",
		"app/root.d/50-stub*":        stubInstallPackages,
		"app/source-repository-app":  "app git /opt/app " + base + "/git/app.git main\n",
		"app/source-repository-data": "# a tarball, its top directory's contents\ndata tar /opt/data " + base + "/files/data.tar.gz *\n",
		"app/source-repository-conf": "conf file /etc/conf.txt ${CONF_URL}\n",
		// Installed from packages: nothing is fetched, not even tried.
		"app/source-repository-pkg": "pkg package /opt/pkg http://127.0.0.1:9/never.git\n",
		// Never fetched from there: the build gets the host's checkout.
		"app/source-repository-my-lib": "my-lib git /opt/lib https://example.invalid/my-lib.git\n",
	})
}

// The source-repositories element fetches a git repository over smart
// HTTP (at the ref DIB_REPOREF_ overrides), a tarball and a file through
// the egress proxy, takes a local checkout of the host's from
// DIB_REPOLOCATION_, writes DIB's git manifest, and keeps what it
// fetched in the image cache: a second build with the server gone and
// DIB_OFFLINE set builds the same from the cache.
func TestCreateSourceRepositories(t *testing.T) {
	needVM(t)
	root, files, lib := t.TempDir(), t.TempDir(), t.TempDir()
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	v1 := commitFile(t, work, "hello", "v1")
	git(t, work, "tag", "v1")
	commitFile(t, work, "hello", "v2")
	git(t, root, "clone", "-q", "--bare", work, "app.git")
	// As CI systems check out the change under test: a commit on no
	// branch, named by its ID.
	git(t, lib, "init", "-q", "-b", "master")
	commitFile(t, lib, "lib.txt", "master")
	git(t, lib, "checkout", "-q", "--detach")
	libHead := commitFile(t, lib, "lib.txt", "the change under test")
	os.WriteFile(filepath.Join(files, "data.tar.gz"), tarball(t, "data-1.0", map[string]string{"README": "data"}), 0o644)
	os.WriteFile(filepath.Join(files, "conf.txt"), []byte("conf"), 0o644)
	base, hits, stop := sourceServer(t, root, files)

	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + sourceElement(t, base), "DIB_IMAGE_CACHE=" + cache,
		"DIB_REPOREF_app=v1", "DIB_REPOLOCATION_my_lib=" + lib, "DIB_REPOREF_my_lib=" + libHead, "DIB_INSTALLTYPE_pkg=package", "CONF_URL=" + base + "/files/conf.txt"}
	args := []string{"create", "--allow-net", strings.TrimPrefix(base, "http://"), "-n", "-t", "tar", "-o", out, "tiny-os", "app"}
	check := func(build string, r result) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", build, r.code, r.stdout, r.stderr)
		}
		tree := readTar(t, out+".tar")
		for path, want := range map[string]string{"opt/app/hello": "v1", "opt/data/README": "data", "etc/conf.txt": "conf",
			"opt/lib/lib.txt": "the change under test", "etc/dib-source-repositories": "/opt/app\n/etc/conf.txt\n/opt/data\n/opt/lib\n"} {
			if tree[path] != want {
				t.Errorf("%s: %s = %q, want %q", build, path, tree[path], want)
			}
		}
		if _, ok := tree["opt/pkg/"]; ok || strings.Contains(r.stderr, ":9 ") {
			t.Errorf("%s: the package-type source was fetched:\n%s", build, r.stderr)
		}
		manifest, _ := os.ReadFile(filepath.Join(out+".d", "dib-manifest-git-img"))
		want := "app git /opt/app " + base + "/git/app.git " + v1 + "\nmy-lib git /opt/lib " + lib + " " + libHead + "\n"
		if string(manifest) != want {
			t.Errorf("%s: the git manifest is %q, want %q", build, manifest, want)
		}
	}
	r := dibvm(t, env, 10*time.Minute, args...)
	check("first build", r)
	t.Logf("first build: %s", r.took.Round(time.Second))
	kept, _ := filepath.Glob(filepath.Join(cache, "source-repositories", "*"))
	if len(kept) != 3 {
		t.Errorf("the image cache keeps %v, want the app's bundle, the tarball and the file", kept)
	}

	stop()
	before := hits.Load()
	os.RemoveAll(out + ".d")
	r = dibvm(t, env, 10*time.Minute, append([]string{"create", "--offline"}, args[1:]...)...)
	check("offline build from the cache", r)
	t.Logf("offline build: %s", r.took.Round(time.Second))
	if hits.Load() != before {
		t.Errorf("the offline build asked the server")
	}
}

// A git source over HTTPS is cloned through the egress proxy (CONNECT,
// so the TLS is git's own, end to end), trusting the certificate
// authority the user lends with --host-path GIT_SSL_CAINFO, as a private
// forge's users configure git; without it, git refuses the certificate
// and the build fails naming the repository.
func TestCreateSourceRepositoriesOverHTTPS(t *testing.T) {
	needVM(t)
	root, work := t.TempDir(), t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	commitFile(t, work, "hello", "over https")
	git(t, root, "clone", "-q", "--bare", work, "app.git")
	base, ca := gitHTTPSServer(t, root)
	elems := elementtest.WriteTree(t, map[string]string{
		"app/element-deps":          "source-repositories\n",
		"app/environment.d/10-test": "export DISTRO_NAME=debian\nunset no_proxy NO_PROXY\n",
		"app/source-repository-app": "app git /opt/app " + base + "/git/app.git main\n",
		"app/root.d/50-stub*":       stubInstallPackages,
	})
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + elems, "DIB_IMAGE_CACHE=" + t.TempDir()}
	args := []string{"create", "--allow-net", strings.TrimPrefix(base, "https://"), "-n", "-t", "tar", "-o", out, "tiny-os", "app"}

	r := dibvm(t, env, 5*time.Minute, args...)
	if r.code == 0 || !strings.Contains(r.stderr, "app.git") || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without the forge's CA: exit %d, want a failure naming the repository and the certificate:\n%s", r.code, tail(r.stderr, 30))
	}
	if _, err := os.Stat(out + ".tar"); err == nil {
		t.Errorf("the failed build left %s.tar", out)
	}

	r = dibvm(t, append(env, "GIT_SSL_CAINFO="+ca), 5*time.Minute, append([]string{"create", "--host-path", "GIT_SSL_CAINFO"}, args[1:]...)...)
	if r.code != 0 {
		t.Fatalf("with --host-path GIT_SSL_CAINFO: exit %d\n%s", r.code, tail(r.stderr, 40))
	}
	t.Logf("build over HTTPS: %s", r.took.Round(time.Second))
	if got := readTar(t, out+".tar")["opt/app/hello"]; got != "over https" {
		t.Errorf("opt/app/hello = %q, want the repository's", got)
	}
}

// What source-repositories would fail on late is refused before the VM
// boots, naming the element, file and line or the variable: a line that
// does not parse, an unknown type, and a DIB_REPOLOCATION_ that names
// nothing on this machine.
func TestCreateSourceRepositoriesRefused(t *testing.T) {
	work := t.TempDir()
	with := func(line string) string {
		return "ELEMENTS_PATH=" + writeElements(t, map[string]string{
			"os/element-provides": "operating-system\n", "os/root.d/10-root": "#!/bin/bash\ntrue\n",
			"mine/element-deps": "source-repositories\n", "mine/source-repository-mine": "# mine\n" + line,
		})
	}
	create := []string{"create", "-o", "img", "-t", "tar", "-n", "os", "mine"}
	good := with("my-app git /opt/app https://example.invalid/app.git\n")
	runCases(t, work, []cliCase{
		{"a line that does not parse", create, []string{with("my-app git /opt/app https://example.invalid/app.git main extra\n")}, 1,
			[]string{"element mine: source-repository-mine line 2:", "is not <name> <type> <destination> <location> [<ref>]"}},
		{"an unknown type", create, []string{with("my-app svn /opt/app https://example.invalid/app\n")}, 1,
			[]string{"element mine: source-repository-mine line 2: unknown type \"svn\" for my-app: the types are git, tar, file, package"}},
		{"an unknown type override", create, []string{good, "DIB_REPOTYPE_my_app=hg"}, 1,
			[]string{"DIB_REPOTYPE_my_app=hg (source repository my-app of element mine, source-repository-mine line 2): unknown type"}},
		{"element-info --check: an unknown type", []string{"element-info", "--check", "os", "mine"}, []string{with("my-app svn /opt/app https://example.invalid/app\n")}, 1,
			[]string{"element mine: source-repository-mine line 2: unknown type \"svn\""}},
		{"a local checkout that is not there", create, []string{good, "DIB_REPOLOCATION_my_app=/nonexistent/checkout"}, 1,
			[]string{"DIB_REPOLOCATION_my_app=/nonexistent/checkout (source repository my-app of element mine, source-repository-mine line 2): no such file or directory here"}},
	})
}
