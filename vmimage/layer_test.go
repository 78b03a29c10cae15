package vmimage

import (
	"archive/tar"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

func TestLayers(t *testing.T) {
	if got := LayerNames(); !slices.Equal(got, []string{"container", "rpm"}) {
		t.Errorf("LayerNames() = %q, want container, rpm", got)
	}
	got, err := Layers([]string{"rpm", "rpm"})
	if err != nil || len(got) != 1 || got[0].Name != "rpm" {
		t.Errorf("Layers(rpm, rpm) = %v, %v; want rpm once", got, err)
	}
	if got, err := Layers(nil); err != nil || len(got) != 0 {
		t.Errorf("Layers(nil) = %v, %v", got, err)
	}
	_, err = Layers([]string{"rpm", "yum"})
	if err == nil || !strings.Contains(err.Error(), `no helper tools layer "yum": dibvm has container, rpm`) {
		t.Errorf("Layers(rpm, yum): %v", err)
	}
}

// The rpm layer holds the tools DIB's rpm-distribution elements call
// outside the chroot, by their Debian package names.
func TestRPMLayer(t *testing.T) {
	for _, p := range []string{"rpm", "dnf", "python3-dnf", "dnf-plugins-core", "zypper", "createrepo-c", "qemu-utils", "btrfs-progs", "umoci", "skopeo"} {
		if !slices.Contains(rpmLayer.Packages, p) {
			t.Errorf("the rpm layer has no %s", p)
		}
	}
}

// TestLayerKey: a layer's cache entry changes with its base's spec and
// with the layer, and with nothing else.
func TestLayerKey(t *testing.T) {
	spec := testSpec("amd64")
	l := Layer{Name: "x", Packages: []string{"a"}}
	k := l.key(spec)
	if k != l.key(spec) || len(k) != 16 || strings.Trim(k, "0123456789abcdef") != "" {
		t.Fatalf("key %q: want 16 stable hex digits", k)
	}
	if k == spec.key() {
		t.Error("a layer has its base's key")
	}
	seen := map[string]string{k: "the layer"}
	for name, change := range map[string]func(*Spec, *Layer){
		"base mirror":   func(s *Spec, _ *Layer) { s.Mirror = "http://127.0.0.1:2/debian" },
		"base arch":     func(s *Spec, _ *Layer) { s.Arch = "arm64" },
		"base packages": func(s *Spec, _ *Layer) { s.Packages = []string{"bash"} },
		"base without":  func(s *Spec, _ *Layer) { s.Without = []string{"perl"} },
		"name":          func(_ *Spec, l *Layer) { l.Name = "y" },
		"packages":      func(_ *Spec, l *Layer) { l.Packages = []string{"a", "b"} },
		"without":       func(_ *Spec, l *Layer) { l.Without = []string{"c"} },
		"drop":          func(_ *Spec, l *Layer) { l.Drop = []string{"usr/libexec/a"} },
	} {
		s, ll := spec, l
		change(&s, &ll)
		key := ll.key(s)
		if other, ok := seen[key]; ok {
			t.Errorf("a layer with another %s has the key of %s", name, other)
		}
		seen[key] = name
	}
}

func TestLayerManifestDigest(t *testing.T) {
	m := LayerManifest{Layer: rpmLayer, Base: "b1", Packages: []PackageRef{{Name: "rpm", Version: "4", SHA256: "r1"}}}
	d := m.Digest()
	same := m
	same.Packages = []PackageRef{{Name: "rpm", Version: "5", SHA256: "r1"}}
	if same.Digest() != d {
		t.Error("the digest changed with a version string alone")
	}
	for name, change := range map[string]func(*LayerManifest){
		"base":     func(m *LayerManifest) { m.Base = "b2" },
		"package":  func(m *LayerManifest) { m.Packages = []PackageRef{{Name: "rpm", SHA256: "r2"}} },
		"packages": func(m *LayerManifest) { m.Packages = nil },
		"name":     func(m *LayerManifest) { m.Layer.Name = "other" },
		"drop":     func(m *LayerManifest) { m.Layer.Drop = []string{"usr/libexec/a"} },
		"a command": func(m *LayerManifest) {
			m.Layer.Commands = map[string]string{"usr/bin/yum": "#!/bin/sh\nexec dnf5 \"$@\"\n"}
		},
		"a configuration file": func(m *LayerManifest) {
			m.Layer.Config = maps.Clone(m.Layer.Config)
			m.Layer.Config["etc/dnf/plugins/local.conf"] = "[main]\nenabled = 1\n"
		},
	} {
		c := m
		change(&c)
		if c.Digest() == d {
			t.Errorf("the digest did not change with the %s", name)
		}
	}
}

// fixtureSource is a mirror's index from testdata: the dependency shapes
// of trixie's rpm tooling, with made-up sums.
func fixtureSource(t *testing.T) *source {
	t.Helper()
	f, err := os.Open("testdata/Packages-layers")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx, err := debrepo.ParseIndex(f)
	if err != nil {
		t.Fatal(err)
	}
	return &source{rel: &debrepo.Release{Codename: "trixie"}, idx: idx}
}

func refNames(refs []PackageRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out
}

// TestResolveLayer: a layer holds its packages' closure less what the
// base has and less its own without list; the base's without list does
// not apply to it.
func TestResolveLayer(t *testing.T) {
	src := fixtureSource(t)
	spec := Spec{Mirror: nowhere, Suite: "stable", Arch: "amd64", Packages: []string{"bash", "python3", "xfsprogs"},
		Without: []string{"libicu[0-9]*", "python3-dbus", "perl"}}
	pl, err := resolve(src, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := refNames(pl.manifest.Packages); !slices.Equal(got, []string{"base-files", "bash", "libc6", "python3", "xfsprogs"}) {
		t.Fatalf("the base holds %q", got)
	}
	pkgs, m, err := resolveLayer(src, pl, rpmLayer)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"btrfs-progs", "createrepo-c", "dnf", "dnf-plugins-core", "gnupg", "golang-github-containers-common", "gpg",
		"libdbus-1-3", "libglib2.0-0t64", "libicu76", "liblua5.4-0", "librpm10", "libxml2", "libzypp1735",
		"python3-dbus", "python3-dnf", "python3-libdnf", "python3-rpm", "qemu-utils", "rpm", "rpm-common",
		"skopeo", "umoci", "zypper",
	}
	if got := refNames(m.Packages); !slices.Equal(got, want) {
		t.Errorf("the rpm layer holds\n%q\nwant\n%q", got, want)
	}
	if len(pkgs) != len(m.Packages) || m.Base != pl.manifest.Digest() || m.Layer.Name != "rpm" {
		t.Errorf("manifest %+v for %d packages; want it onto base %s", m, len(pkgs), pl.manifest.Digest())
	}
	_, _, err = resolveLayer(src, pl, Layer{Name: "broken", Packages: []string{"nosuch"}})
	if err == nil || !strings.Contains(err.Error(), "resolve the broken tools layer's packages: package nosuch is not in the index") {
		t.Errorf("a layer with a package the mirror lacks: %v", err)
	}
}

// A layer's commands are in its tree, executable, whatever its packages
// hold; the rpm layer answers to yum and yumdownloader as dnf.
func TestLayerCommands(t *testing.T) {
	tr, err := assembleLayer(rpmLayer, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/bin/yum":           "exec dnf \"$@\"",
		"usr/bin/yumdownloader": "exec dnf download \"$@\"",
	} {
		n, ok := tr.Get(p)
		if !ok {
			t.Errorf("the rpm layer has no %s", p)
			continue
		}
		if !strings.HasPrefix(string(n.Data), "#!/bin/sh\n") || !strings.Contains(string(n.Data), want) || n.Mode.Perm() != 0o755 {
			t.Errorf("%s: %q, mode %v", p, n.Data, n.Mode)
		}
	}
	// dnf's local plugin, which Debian enables, is off.
	if n, ok := tr.Get("etc/dnf/plugins/local.conf"); !ok || string(n.Data) != "[main]\nenabled = 0\n" || n.Mode.Perm() != 0o644 {
		t.Errorf("the rpm layer's local.conf: %v", n)
	}
}

// A layer never replaces what the base's configure wrote, nor /init.
func TestDropBaseOwned(t *testing.T) {
	tr := initramfs.NewTree()
	for _, p := range []string{"etc/passwd", "etc/dibvm/modules", "init", "usr/local/bin/sudo", "tmp/x"} {
		tr.WriteFile(p, []byte("from a package"), 0o644)
	}
	tr.WriteFile("usr/bin/rpm", []byte("rpm"), 0o755)
	dropBaseOwned(tr)
	for _, p := range []string{"etc/passwd", "etc/dibvm", "init", "usr/local/bin/sudo", "tmp"} {
		if _, ok := tr.Get(p); ok {
			t.Errorf("the layer still has %s", p)
		}
	}
	if _, ok := tr.Get("usr/bin/rpm"); !ok {
		t.Error("the layer lost its own usr/bin/rpm")
	}
}

// Each layer says what it gives, and that is no part of its key.
func TestLayerTools(t *testing.T) {
	if got := LayerTools(); len(got) != 2 || !strings.HasPrefix(got[0], "container (buildah,") || !strings.HasPrefix(got[1], "rpm (rpm, dnf, zypper,") {
		t.Errorf("LayerTools() = %q", got)
	}
	l := rpmLayer
	l.Tools = "other words"
	if l.key(testSpec("amd64")) != rpmLayer.key(testSpec("amd64")) {
		t.Error("the description changed the layer's key")
	}
}

// The container layer is buildah without its test programs, with the
// podman DIB's containerfile calls, and image storage on the scratch
// disk.
func TestContainerLayer(t *testing.T) {
	if !slices.Equal(containerLayer.Packages, []string{"buildah"}) {
		t.Errorf("the container layer's packages: %q", containerLayer.Packages)
	}
	tr := initramfs.NewTree()
	tr.WriteFile("usr/bin/buildah", []byte("buildah"), 0o755)
	tr.WriteFile("usr/libexec/buildah/tutorial", []byte("a test program"), 0o755)
	finishLayer(tr, containerLayer)
	if _, ok := tr.Get("usr/libexec/buildah/tutorial"); ok {
		t.Error("buildah's test programs are in the layer")
	}
	if _, ok := tr.Get("usr/bin/buildah"); !ok {
		t.Error("the layer lost buildah itself")
	}
	if n, ok := tr.Get("usr/bin/podman"); !ok || n.Mode.Perm() != 0o755 || !strings.Contains(string(n.Data), "buildah build") {
		t.Errorf("the container layer's podman: %v", n)
	}
	if n, ok := tr.Get("etc/containers/storage.conf"); !ok || !strings.Contains(string(n.Data), `graphroot = "/build/containers"`) {
		t.Errorf("the container layer's storage.conf: %v", n)
	}
}

// The helper's podman turns what DIB's containerfile runs into buildah's
// commands (here a stand-in buildah that records them), exports the
// working container's root as a tar, and refuses what it does not do,
// saying what it does.
func TestPodmanCommand(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=rocky\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	// buildah prints the container's name from from, the mount point
	// from mount, and a word from umount, as the real one does; the
	// host's storage settings must not reach it.
	buildah := "#!/bin/sh\necho \"$BUILDAH_ISOLATION ${STORAGE_DRIVER:-} ${CONTAINERS_STORAGE_CONF:-}$*\" >> " + log + "\n" +
		"case $1 in\n" +
		"from) echo working-container ;;\n" +
		"mount) echo " + root + " ;;\n" +
		"umount) echo unmounted ;;\n" +
		"esac\n"
	for name, body := range map[string]string{"buildah": buildah, "podman": podmanCommand} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	podman := func(args ...string) (string, string, error) {
		cmd := exec.Command(filepath.Join(dir, "podman"), args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"),
			"STORAGE_DRIVER=vfs", "CONTAINERS_STORAGE_CONF=/home/me/.config/containers/storage.conf")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	// DIB 3.13's calls, then DIB master's.
	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"build", "-t", "dib-work-image", "-f", "/lent/Containerfile", "/cache/containerfile"}, ""},
		{[]string{"run", "-d", "dib-work-image", "/bin/sh"}, "working-container\n"},
		{[]string{"build", "--network", "host", "-t", "dib-tmp-work-image-1", "-f", "/lent/Containerfile", "/cache/containerfile"}, ""},
		{[]string{"run", "--network", "host", "--name", "dib-tmp-export-2", "-d", "dib-tmp-work-image-1", "/bin/sh"}, "working-container\n"},
		{[]string{"rm", "dib-tmp-export-2"}, ""},
		{[]string{"rmi", "dib-tmp-work-image-1"}, ""},
	} {
		out, stderr, err := podman(c.args...)
		if err != nil || out != c.out {
			t.Fatalf("podman %q: %v, printed %q, want %q\n%s", c.args, err, out, c.out, stderr)
		}
	}
	out, stderr, err := podman("export", "dib-tmp-export-2")
	if err != nil {
		t.Fatalf("podman export: %v\n%s", err, stderr)
	}
	// The export is the tar and nothing else: tar pads its end to whole
	// records, so anything printed after it would show in the length.
	if len(out)%10240 != 0 || strings.Contains(out, "unmounted") {
		t.Errorf("podman export printed %d bytes, more than a tar", len(out))
	}
	tr := tar.NewReader(strings.NewReader(out))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("podman export: %v", err)
		}
		names = append(names, h.Name)
	}
	if !slices.Contains(names, "./etc/os-release") {
		t.Errorf("podman export wrote %q, want the container's root", names)
	}
	got, _ := os.ReadFile(log)
	want := "chroot  build -t dib-work-image -f /lent/Containerfile /cache/containerfile\n" +
		"chroot  from --pull=never dib-work-image\n" +
		"chroot  build --network host -t dib-tmp-work-image-1 -f /lent/Containerfile /cache/containerfile\n" +
		"chroot  from --pull=never --name dib-tmp-export-2 dib-tmp-work-image-1\n" +
		"chroot  rm dib-tmp-export-2\n" +
		"chroot  rmi dib-tmp-work-image-1\n" +
		"chroot  mount dib-tmp-export-2\n" +
		"chroot  umount dib-tmp-export-2\n"
	if string(got) != want {
		t.Errorf("buildah ran\n%s\nwant\n%s", got, want)
	}
	for args, msg := range map[string]string{
		"pull quay.io/x":                          "pull is not a command dibvm's podman has: it does build, run, export, rm and rmi",
		"run --rm -d img /bin/sh":                 "run: option --rm is not one dibvm's podman has",
		"build --network bridge -t i -f F ctx":    "--network bridge: dibvm's podman runs Containerfile steps with the helper's own network only (unset DIB_CONTAINERFILE_NETWORK_DRIVER",
		"build --network=slirp4netns -t i ctx":    "--network slirp4netns: ",
		"run --network bridge -d img /bin/sh":     "--network bridge: ",
		"run --network=none --name c img /bin/sh": "--network none: ",
		"": "no command",
	} {
		_, stderr, err := podman(strings.Fields(args)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 125 || !strings.Contains(stderr, msg) {
			t.Errorf("podman %s: %v, %q; want exit 125 saying %q", args, err, stderr, msg)
		}
	}
}
