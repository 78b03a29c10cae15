package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debianDIBElements is where Debian's python3-diskimage-builder keeps
// DIB's elements, with their test-elements.
const debianDIBElements = "/usr/lib/python3/dist-packages/diskimage_builder/elements"

// dibElementsDir is DIB's own elements directory: DIBVM_TEST_DIB_ELEMENTS,
// or Debian's package's. These are other people's elements: the tests
// take them from there as they run, never from this tree.
func dibElementsDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("DIBVM_TEST_DIB_ELEMENTS")
	if d == "" {
		d = debianDIBElements
	}
	if !fileExists(filepath.Join(d, "modprobe-blacklist")) {
		t.Fatalf("DIB's elements are not at %s: install Debian's python3-diskimage-builder (scripts/install-deps.sh does), or name the directory with DIBVM_TEST_DIB_ELEMENTS", d)
	}
	return d
}

// upstreamElements copies DIB's elements of the given names into a
// directory of their own, for ELEMENTS_PATH: the whole of DIB's elements
// directory there would replace dibvm's built-in elements of the same
// names with DIB's.
func upstreamElements(t *testing.T, names ...string) string {
	t.Helper()
	src := dibElementsDir(t)
	dst := t.TempDir()
	for _, n := range names {
		tree := os.DirFS(filepath.Join(src, n))
		if err := os.CopyFS(filepath.Join(dst, n), tree); err != nil {
			t.Fatalf("copy DIB's element %s: %v", n, err)
		}
		// Python's byte-code caches are no part of an element.
		caches, _ := filepath.Glob(filepath.Join(dst, n, "*", "__pycache__"))
		more, _ := filepath.Glob(filepath.Join(dst, n, "__pycache__"))
		for _, c := range append(caches, more...) {
			if err := os.RemoveAll(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// wantInTar checks that the tar's files hold each wanted text.
func wantInTar(t *testing.T, files map[string]string, want map[string][]string) {
	t.Helper()
	for path, texts := range want {
		got, ok := files[path]
		if !ok {
			t.Errorf("the image has no %s", path)
			continue
		}
		for _, s := range texts {
			if !strings.Contains(got, s) {
				t.Errorf("%s lacks %q; it holds:\n%s", path, s, got)
			}
		}
	}
}

// TestDIBUpstreamElementsTinyOS builds, in one tiny-os build, DIB's own
// elements whose effect is files placed in the tree (from Debian's
// package, as they are), and checks each one's effect in the tar: among
// them disable-nouveau, which relies on the built-in modprobe copying
// other elements' modprobe.d files into the image.
func TestDIBUpstreamElementsTinyOS(t *testing.T) {
	needVM(t)
	upstream := upstreamElements(t, "disable-nouveau", "journal-to-console", "element-manifest",
		"cloud-init-nocloud", "enable-serial-console", "apt-conf", "apt-sources", "apt-preferences")
	// apt-conf, apt-sources and apt-preferences read the host files their
	// settings name, which dibvm lends the build; apt-preferences reads
	// its package manifest with the helper's jq.
	host := t.TempDir()
	aptConf := filepath.Join(host, "my-apt.conf")
	sources := filepath.Join(host, "my-sources.list")
	writeFile(t, aptConf, "Acquire::Retries \"7\";\n")
	writeFile(t, sources, "deb http://deb.debian.org/debian stable main\n")
	manifest := filepath.Join(host, "dpkg-manifest.json")
	writeFile(t, manifest, `{"packages": [{"package": "openssl", "version": "3.0.15-1~deb12u1"}, {"package": "curl", "version": "7.88.1-10+deb12u8"}]}`)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{
		"ELEMENTS_PATH=" + testElements(t) + ":" + upstream,
		"DIB_MODPROBE_BLACKLIST=pcspkr floppy",
		"DIB_APT_CONF=" + aptConf,
		"DIB_APT_SOURCES=" + sources,
		"DIB_DPKG_MANIFEST=" + manifest,
	}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out,
		"tiny-tools", "dib-init-system", "disable-nouveau", "journal-to-console",
		"element-manifest", "cloud-init-nocloud", "enable-serial-console", "apt-conf", "apt-sources", "apt-preferences")
	t.Logf("the build took %s", r.took.Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout, 60), r.stderr)
	}
	files := readTar(t, out+".tar")
	wantInTar(t, files, map[string][]string{
		// disable-nouveau's modprobe.d file, copied by modprobe's
		// extra-data.d hook; modprobe's own blacklist beside it.
		"etc/modprobe.d/disable-nouveau.conf":             {"blacklist nouveau", "options nouveau modeset=0"},
		"etc/modprobe.d/blacklist.conf":                   {"blacklist pcspkr\n", "blacklist floppy\n"},
		"etc/systemd/journald.conf.d/log-to-console.conf": {"[Journal]", "ForwardToConsole=true"},
		// element-manifest lists the build's elements, its dependencies
		// (manifests, modprobe, cloud-init-datasources) among them.
		"etc/dib-manifests/dib-element-manifest":                  {"disable-nouveau\n", "modprobe\n", "manifests\n", "cloud-init-datasources\n", "tiny-os\n"},
		"var/lib/cloud/seed/nocloud/user-data":                    nil,
		"var/lib/cloud/seed/nocloud/meta-data":                    nil,
		"etc/cloud/cloud.cfg.d/91-dib-cloud-init-datasources.cfg": {"datasource_list: [ NoCloud, None ]"},
		"etc/udev/rules.d/99-serial-console.rules":                {"getty@$name.service"},
		"etc/apt/apt.conf":                                        {"Acquire::Retries \"7\";"},
		"etc/apt/sources.list":                                    {"deb http://deb.debian.org/debian stable main"},
		"etc/apt/preferences": {"Package: openssl\nPin: version 3.0.15-1~deb12u1\nPin-Priority: 1001\n",
			"Package: curl\nPin: version 7.88.1-10+deb12u8\nPin-Priority: 1001\n"},
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDIBFunctestsHarness runs scripts/dib-functests.sh, the harness of
// `make dib-functests`, on test elements of its own in DIB's layout
// (testdata/dib-functests) on tiny-os: a build that succeeds passes, one
// that fails leaving DIB's should-fail marker passes (dibvm's
// break=after-error shell finds it), and one that fails without it
// fails. (The harness also fails a build that succeeds with the marker in
// its tar, as DIB's does; but DIB and dibvm both empty the image's /tmp
// before the tar is made, so no build can.)
func TestDIBFunctestsHarness(t *testing.T) {
	needVM(t)
	cmd := exec.Command("../../scripts/dib-functests.sh", "-b", dibvmBin, "-d", "testdata/dib-functests",
		"tiny-os/build-succeeds", "tiny-os/should-fail", "tiny-os/fails")
	cmd.Env = append(os.Environ(), "ELEMENTS_PATH="+testElements(t), "DIB_NO_CHECKPOINTS=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("the three builds took %s", time.Since(start).Round(time.Second))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1 (one test fails), got %v\n%s", err, tail(string(out), 80))
	}
	table := functestResults(string(out))
	want := map[string]string{
		"tiny-os/build-succeeds": "PASS", "tiny-os/should-fail": "PASS",
		"tiny-os/fails": "FAIL",
	}
	for name, res := range want {
		if table[name] != res {
			t.Errorf("%s: %q, want %s\n%s", name, table[name], res, tail(string(out), 80))
		}
	}
}

// functestResults reads the table dib-functests.sh ends with: each test's
// PASS or FAIL.
func functestResults(out string) map[string]string {
	res := map[string]string{}
	_, table, _ := strings.Cut(out, "\nTEST ")
	for _, line := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(line); len(f) == 3 {
			res[f[0]] = f[1]
		}
	}
	return res
}
