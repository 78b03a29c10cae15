package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"net/http/cgi"
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

// sourceElement is an element that registers a source of every type, on
// tiny-os with a stub install-packages (for package-installs' git and
// curl).
func sourceElement(t *testing.T, base string) string {
	return elementtest.WriteTree(t, map[string]string{
		"app/element-deps": "source-repositories\n",
		// The guest's no_proxy names 127.0.0.1 for its own loopback; the
		// stand-in server is on the host's, reached through the proxy.
		"app/environment.d/10-test": "export DISTRO_NAME=debian\nunset no_proxy NO_PROXY\n",
		"app/root.d/50-stub*": `#!/bin/bash
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
`,
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
