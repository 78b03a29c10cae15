package vmimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// Layer is a named set of tools that the helper gets only when a build
// asks for them: its packages, with what they need beyond the base
// appliance, make a cpio archive of their own, appended to the
// initramfs after the base's. The kernel unpacks the whole initramfs at
// every boot (7 ms a MiB under TCG) and holds it in memory, so a build
// that does not need a layer's tools does not pay for them.
type Layer struct {
	Name string `json:"name"`
	// Tools says what the layer gives, for the user: it is not part of
	// the layer's key.
	Tools    string   `json:"-"`
	Packages []string `json:"packages"`
	// Without are packages (path.Match patterns) that the layer's
	// packages name but that only commands the helper never runs need,
	// as Spec.Without for the base. The base's own list does not apply:
	// a layer's tools may need what the base leaves out.
	Without []string `json:"without,omitempty"`
	// Drop are paths (and what is below them) the layer's packages
	// install that the helper never runs: a package's test programs.
	Drop []string `json:"drop,omitempty"`
	// Commands are scripts the layer adds, by path in the helper: names
	// that elements call on the hosts they were written for, which
	// Debian's packages do not install.
	Commands map[string]string `json:"commands,omitempty"`
	// Config are files the layer writes over its packages' own, by path:
	// settings that make the tools behave in the helper as they do on
	// the hosts the elements were written for.
	Config map[string]string `json:"config,omitempty"`
}

// rpmLayer is what building rpm-distribution images (CentOS, Fedora,
// openSUSE and their kin) calls outside the chroot: DIB's yum-minimal
// and zypper-minimal install into the new root with the host's rpm, dnf
// (and dnf download, a plugin) or zypper; the cloud-image elements
// convert qcow2 with qemu-img and mount btrfs roots; the container
// elements pull and unpack OCI images; a test repository is made with
// createrepo_c.
var rpmLayer = Layer{
	Name:  "rpm",
	Tools: "rpm, dnf, zypper, createrepo_c, qemu-img, btrfs-progs, skopeo and umoci",
	Packages: []string{
		"rpm", "dnf", "python3-dnf", "dnf-plugins-core", "zypper", "createrepo-c",
		"qemu-utils", "btrfs-progs", "umoci", "skopeo",
	},
	Without: []string{
		// rpm depends on Perl for rpmbuild's dependency generators,
		// which DIB's elements never run.
		"perl", "perl-modules-*", "libperl*",
		// gnupg's translations; dnf's python3-dbus, which the base
		// leaves out, is kept: dnf declares it.
		"gnupg-l10n",
		// The container stack's networking runs containers; skopeo
		// only copies images.
		"container-network-stack", "containernetworking-plugins", "netavark", "aardvark-dns",
	},
	// DIB 3.13's yum-minimal calls yum and yumdownloader outside the
	// chroot; Fedora's dnf packages make both names dnf's, Debian's
	// make neither. (DIB master falls back to dnf itself.)
	Commands: map[string]string{
		"usr/bin/yum":           "#!/bin/sh\nexec dnf \"$@\"\n",
		"usr/bin/yumdownloader": "#!/bin/sh\nexec dnf download \"$@\"\n",
	},
	// Debian's dnf-plugins-core has every plugin in one package, and
	// enables local (a repository of everything dnf installs, which
	// fails every run where its directory is missing) and versionlock;
	// Fedora ships both apart, and installs neither by default.
	Config: map[string]string{
		"etc/dnf/plugins/local.conf":       "[main]\nenabled = 0\n",
		"etc/dnf/plugins/versionlock.conf": "[main]\nenabled = 0\n",
	},
}

// containerLayer is what DIB's containerfile calls outside the chroot:
// podman build, run, export, rm and rmi, to make the build's root from a
// Containerfile (the rocky, almalinux, fedora and ubuntu-systemd
// container elements). Debian's podman runs containers through conmon,
// crun and netavark, which need cgroups and a network stack the helper
// does not have; the build half of podman is buildah, which runs a
// Containerfile's RUN steps chrooted with the host's network, as DIB's
// containerfile asks (--network host). So the layer is buildah, with a
// podman of dibvm's that does DIB's five commands with it (see
// podmanCommand).
var containerLayer = Layer{
	Name:     "container",
	Tools:    "buildah, with a podman that does what DIB's containerfile asks of it",
	Packages: []string{"buildah"},
	Without: []string{
		// Networks for containers: RUN steps use the helper's own.
		"container-network-stack", "containernetworking-plugins", "netavark", "aardvark-dns",
		// Rootless builds' uid maps: the helper builds as root.
		"uidmap",
	},
	// Debian's buildah carries its upstream's test programs (copy,
	// imgtype, serve, tutorial): 94 MB the helper would unpack at every
	// boot of a container build.
	Drop: []string{"usr/libexec/buildah"},
	Commands: map[string]string{
		"usr/bin/podman": podmanCommand,
		// buildah looks for netavark before it makes any container, to
		// give containers networks of their own; chrooted RUN steps use
		// the helper's, so this one only says so if anything runs it.
		"usr/libexec/podman/netavark": "#!/bin/sh\n" +
			"echo \"netavark (dibvm): the helper's Containerfile steps run with the helper's own network; it makes no container networks\" >&2\n" +
			"exit 1\n",
	},
	Config: map[string]string{
		// Image layers on the build's scratch disk (dibbuild's /build),
		// not in the helper's memory; overlay, so a RUN step does not
		// copy the whole root as vfs does.
		"etc/containers/storage.conf": "[storage]\n" +
			"driver = \"overlay\"\n" +
			"graphroot = \"/build/containers\"\n" +
			"runroot = \"/run/containers/storage\"\n",
	},
}

// podmanCommand is the helper's podman: DIB's containerfile (3.13 and
// master) runs
//
//	podman build [--network N] -t IMAGE -f FILE [OPTIONS] CONTEXT
//	podman run [--network N] [--name NAME] -d IMAGE /bin/sh
//	podman export CONTAINER | tar -C $TARGET_ROOT --numeric-owner -xf -
//	podman rm CONTAINER; podman rmi IMAGE
//
// and reads nothing back but the exported tree. build is buildah's
// (podman's build is buildah's code), with RUN steps chrooted; run makes
// a working container of the image without running anything, since
// DIB's container runs only /bin/sh, detached, to have something to
// export; export writes its root as a tar, numeric owners and xattrs
// kept. Anything else is refused by name.
const podmanCommand = `#!/bin/sh
# dibvm's podman: buildah underneath, for what DIB's containerfile does.
set -eu
export BUILDAH_ISOLATION=chroot
# The layer's own storage and engine settings, whatever the caller's
# environment brought from the host (its paths and drivers mean nothing
# here); the user's registries.conf is lent and kept.
unset CONTAINERS_CONF CONTAINERS_STORAGE_CONF STORAGE_DRIVER STORAGE_OPTS CONTAINER_HOST
# Blobs being pulled wait on the build's scratch disk, beside the image
# storage (storage.conf), not in the helper's memory.
if [ -d /build ]; then
	export TMPDIR=/build/containers/tmp
	mkdir -p "$TMPDIR"
fi
die() { echo "podman (dibvm): $*" >&2; exit 125; }
# hostNetwork refuses a --network other than host: RUN steps share the
# helper's network, and dibvm makes no container networks.
hostNetwork() {
	case $1 in
	host) ;;
	*) die "--network $1: dibvm's podman runs Containerfile steps with the helper's own network only (unset DIB_CONTAINERFILE_NETWORK_DRIVER, or set it to host)" ;;
	esac
}
[ $# -gt 0 ] || die "no command: dibvm's podman does build, run, export, rm and rmi, as DIB's containerfile uses them"
cmd=$1; shift
case $cmd in
build)
	prev=
	for a in "$@"; do
		case $prev:$a in
		--network:*) hostNetwork "$a" ;;
		*:--network=*) hostNetwork "${a#--network=}" ;;
		esac
		prev=$a
	done
	exec buildah build "$@" ;;
run)
	name= image=
	while [ $# -gt 0 ]; do
		case $1 in
		--name) name=$2; shift 2 ;;
		--name=*) name=${1#--name=}; shift ;;
		--network) hostNetwork "$2"; shift 2 ;;
		--network=*) hostNetwork "${1#--network=}"; shift ;;
		-d|--detach) shift ;;
		-*) die "run: option $1 is not one dibvm's podman has (it has --name, --network host and -d)" ;;
		*) image=$1; break ;;
		esac
	done
	[ -n "$image" ] || die "run: no image named"
	if [ -n "$name" ]; then
		buildah from --pull=never --name "$name" "$image"
	else
		buildah from --pull=never "$image"
	fi ;;
export)
	[ $# -eq 1 ] || die "export: name one container"
	root=$(buildah mount "$1")
	tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -cf - .
	# The tree is written: failing to unmount it (buildah rm does it
	# anyway) must not fail the export.
	buildah umount "$1" >/dev/null || : ;;
rm)
	exec buildah rm "$@" ;;
rmi)
	exec buildah rmi "$@" ;;
*)
	die "$cmd is not a command dibvm's podman has: it does build, run, export, rm and rmi, as DIB's containerfile uses them" ;;
esac
`

// layers are the layers a build can ask for, by name.
var layers = []Layer{containerLayer, rpmLayer}

// LayerNames are the names of the layers a build can ask for, sorted.
func LayerNames() []string {
	var names []string
	for _, l := range layers {
		names = append(names, l.Name)
	}
	slices.Sort(names)
	return names
}

// LayerTools describes each layer dibvm has, as "NAME (TOOLS)", by name.
func LayerTools() []string {
	var out []string
	for _, name := range LayerNames() {
		i := slices.IndexFunc(layers, func(l Layer) bool { return l.Name == name })
		out = append(out, name+" ("+layers[i].Tools+")")
	}
	return out
}

// Layers returns the layers called names, sorted by name and each once;
// a name dibvm does not know is an error that lists those it does.
func Layers(names []string) ([]Layer, error) {
	var out []Layer
	for _, name := range names {
		i := slices.IndexFunc(layers, func(l Layer) bool { return l.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("no helper tools layer %q: dibvm has %s", name, strings.Join(LayerNames(), ", "))
		}
		if !slices.ContainsFunc(out, func(l Layer) bool { return l.Name == name }) {
			out = append(out, layers[i])
		}
	}
	slices.SortFunc(out, func(a, b Layer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// key names the cache entry of l over the base of spec: a layer holds
// what the base lacks, so another base is another layer.
func (l Layer) key(spec Spec) string {
	b, _ := json.Marshal(struct {
		Format int
		Spec   Spec
		Layer  Layer
	}{formatVersion, spec, l})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// LayerManifest records what went into a layer.
type LayerManifest struct {
	Layer Layer `json:"layer"`
	// Base is the Digest of the base manifest the layer was resolved
	// onto: it holds what that base lacks, and goes with no other.
	Base      string        `json:"base"`
	Packages  []PackageRef  `json:"packages"`
	Built     time.Time     `json:"built"`
	BuildTime time.Duration `json:"build_time"`
}

// Digest identifies what is in m's archive: the exact packages, the base
// they go onto, and the files the layer writes itself.
func (m *LayerManifest) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%s\n%s\n", formatVersion, m.Layer.Name, m.Base)
	for _, p := range m.Packages {
		fmt.Fprintf(h, "%s %s\n", p.Name, p.SHA256)
	}
	fmt.Fprintf(h, "%q\n", m.Layer.Drop)
	for _, files := range []map[string]string{m.Layer.Commands, m.Layer.Config} {
		for _, p := range slices.Sorted(maps.Keys(files)) {
			fmt.Fprintf(h, "%q %q\n", p, files[p])
		}
		fmt.Fprintln(h)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// resolveLayer finds what l adds to the base of pl.
func resolveLayer(src *source, pl *plan, l Layer) ([]*debrepo.Package, *LayerManifest, error) {
	pkgs, err := src.idx.ResolveOnto(pl.userland, l.Packages, l.Without)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve the %s tools layer's packages: %w", l.Name, err)
	}
	m := &LayerManifest{Layer: l, Base: pl.manifest.Digest()}
	for _, p := range pkgs {
		m.Packages = append(m.Packages, ref(p))
	}
	return pkgs, m, nil
}

// baseOwned are the files the base's configure writes, which no layer
// replaces: a later archive's file wins when the kernel unpacks them.
// The agent comes last of all, so /init is always the agent.
var baseOwned = []string{
	"etc/passwd", "etc/group", "etc/shadow", "etc/hostname", "etc/hosts", "etc/mtab",
	"etc/ssl/certs/ca-certificates.crt", "etc/dibvm", "usr/sbin/modprobe", "usr/local/bin/sudo",
	"tmp", "init",
}

// assembleLayer unpacks l's packages into a tree of their own, with
// l's commands and configuration.
func assembleLayer(l Layer, pkgs []*debrepo.Package, files map[string]string) (*initramfs.Tree, error) {
	t := initramfs.NewTree()
	if err := unpackInto(t, pkgs, files); err != nil {
		return nil, err
	}
	finishLayer(t, l)
	return t, nil
}

// finishLayer takes out of t, l's packages unpacked, what the base owns
// and what l drops, and writes l's commands and configuration.
func finishLayer(t *initramfs.Tree, l Layer) {
	dropBaseOwned(t)
	for _, p := range l.Drop {
		t.Remove(p)
	}
	for p, script := range l.Commands {
		t.WriteFile(p, []byte(script), 0o755)
	}
	for p, data := range l.Config {
		t.WriteFile(p, []byte(data), 0o644)
	}
}

func dropBaseOwned(t *initramfs.Tree) {
	for _, p := range baseOwned {
		t.Remove(p)
	}
}

// buildLayer makes layer/<key>/ for l over the base of pl, unless the
// packages it would hold are those already there.
func (c *Cache) buildLayer(ctx context.Context, src *source, pl *plan, l Layer) (*LayerManifest, error) {
	start := time.Now()
	pkgs, m, err := resolveLayer(src, pl, l)
	if err != nil {
		return nil, err
	}
	spec := pl.manifest.Spec
	if old, err := c.layerManifest(spec, l); err == nil && old.Digest() == m.Digest() {
		return old, nil
	}
	c.logf("appliance: downloading %d packages for the %s tools layer", len(pkgs), l.Name)
	files, err := fetchAll(ctx, src.repo, pkgs)
	if err != nil {
		return nil, err
	}
	tree, err := assembleLayer(l, pkgs, files)
	if err != nil {
		return nil, err
	}
	m.Built, m.BuildTime = time.Now().UTC(), time.Since(start)
	err = c.replaceDir(c.layerDir(spec, l), func(tmp string) error {
		if err := writeCPIO(layerCPIO(tmp), tree); err != nil {
			return err
		}
		return writeJSON(manifestFile(tmp), m)
	})
	if err != nil {
		return nil, fmt.Errorf("write the %s tools layer: %w", l.Name, err)
	}
	c.logf("appliance: %s tools layer ready (%d packages, %d MiB) in %s",
		l.Name, len(pkgs), tree.Size()>>20, time.Since(start).Round(time.Millisecond))
	return m, nil
}
