//go:build e2e

package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ulikunitz/xz"
)

// ubuntuArchive stands in for archive.ubuntu.com, which these machines
// cannot reach: an archive shaped like Ubuntu's (dists/noble and its
// -updates, -security and -backports pockets, components main and
// universe), signed by a test key, on the host's IPv6 loopback. Its
// packages are Debian's (trixie's main index, the files fetched from
// Debian's mirror by redirect) plus empty stand-ins, made by the test,
// for the packages DIB's elements install on Ubuntu that Debian lacks. The build checks it with the test key the way a user gives a
// mirror's key, DIB_APT_KEYRING.
type ubuntuArchive struct {
	files map[string][]byte // by path under /ubuntu
	addr  string
}

const debianMirror = "http://deb.debian.org/debian"

func newUbuntuArchive(t *testing.T, key *openpgp.Entity) *ubuntuArchive {
	t.Helper()
	a := &ubuntuArchive{files: map[string][]byte{}}
	packages := debianPackages(t)
	// What Ubuntu has and Debian does not: the kernel metapackages, as
	// empty packages that depend on Debian's kernel, and
	// software-properties-common (gone from Debian), which DIB's base
	// element installs on Ubuntu, as an empty package.
	for _, p := range []struct{ name, depends string }{
		{"linux-image-generic", "linux-image-amd64"},
		{"linux-image-virtual", "linux-image-amd64"},
		{"software-properties-common", ""},
	} {
		deb := metaPackage(t, p.name, p.depends)
		path := "pool/main/s/stand-ins/" + p.name + "_1.0_amd64.deb"
		a.files["/ubuntu/"+path] = deb
		sum := sha256.Sum256(deb)
		packages = append(packages, fmt.Sprintf("\n%sFilename: %s\nSize: %d\nSHA256: %s\n",
			controlFields(p.name, p.depends), path, len(deb), hex.EncodeToString(sum[:]))...)
	}
	for _, suite := range []string{"noble", "noble-updates", "noble-security", "noble-backports"} {
		var sums strings.Builder
		for _, comp := range []string{"main", "universe"} {
			var index []byte
			if suite == "noble" && comp == "main" {
				index = packages
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(index)
			zw.Close()
			for name, data := range map[string][]byte{"Packages": index, "Packages.gz": gz.Bytes()} {
				p := comp + "/binary-amd64/" + name
				a.files["/ubuntu/dists/"+suite+"/"+p] = data
				sum := sha256.Sum256(data)
				fmt.Fprintf(&sums, " %s %d %s\n", hex.EncodeToString(sum[:]), len(data), p)
			}
		}
		release := fmt.Sprintf("Origin: Ubuntu\nLabel: Ubuntu\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: amd64\nComponents: main universe\n"+
			"Description: dibvm's stand-in for Ubuntu's archive\nSHA256:\n%s",
			suite, suite, time.Now().UTC().Format(time.RFC1123), sums.String())
		var inRelease, sig bytes.Buffer
		w, err := clearsign.Encode(&inRelease, key.PrivateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, release)
		w.Close()
		if err := openpgp.ArmoredDetachSign(&sig, key, strings.NewReader(release), nil); err != nil {
			t.Fatal(err)
		}
		a.files["/ubuntu/dists/"+suite+"/Release"] = []byte(release)
		a.files["/ubuntu/dists/"+suite+"/Release.gpg"] = sig.Bytes()
		a.files["/ubuntu/dists/"+suite+"/InRelease"] = inRelease.Bytes()
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("a server on the IPv6 loopback: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if data, ok := a.files[r.URL.Path]; ok {
			w.Write(data)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/ubuntu/pool/"); ok {
			http.Redirect(w, r, debianMirror+"/pool/"+rest, http.StatusFound)
			return
		}
		http.NotFound(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a.addr = ln.Addr().String()
	return a
}

// debianPackages is the index of Debian's stable main for amd64.
func debianPackages(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(debianMirror + "/dists/stable/main/binary-amd64/Packages.xz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Debian's Packages.xz: %s", resp.Status)
	}
	zr, err := xz.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("Debian's Packages.xz: %v", err)
	}
	// One newline at the end: a stanza added after it starts with the
	// blank line that separates stanzas.
	return append(bytes.TrimRight(data, "\n"), '\n')
}

// controlFields are a stand-in package's control fields.
func controlFields(name, depends string) string {
	f := "Package: " + name + "\nVersion: 1.0\nArchitecture: amd64\nMaintainer: dibvm tests <tests@example.invalid>\n"
	if depends != "" {
		f += "Depends: " + depends + "\n"
	}
	return f + "Priority: optional\nSection: misc\nDescription: " + name + ", a stand-in for the test archive\n"
}

// metaPackage is a .deb with no files that depends on depends (if any).
func metaPackage(t *testing.T, name, depends string) []byte {
	t.Helper()
	control := controlFields(name, depends)
	tgz := func(files map[string]string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
		for n, c := range files {
			tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: 0o644, Size: int64(len(c))})
			io.WriteString(tw, c)
		}
		tw.Close()
		zw.Close()
		return b.Bytes()
	}
	var deb bytes.Buffer
	deb.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar.gz", tgz(map[string]string{"control": control})},
		{"data.tar.gz", tgz(nil)},
	} {
		fmt.Fprintf(&deb, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.data))
		deb.Write(m.data)
		if len(m.data)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	return deb.Bytes()
}

// TestE2EUbuntuMinimal builds `vm ubuntu-minimal growroot devuser
// openssh-server`
// from the stand-in archive, as an ordinary user, with the egress opened
// for it by --allow-net, and boots it: the image has Ubuntu's apt sources
// (the release and its updates, security and backports pockets, main and
// universe), its name, its IPv6 settings; it comes up on the network
// with no cloud-init, and OpenSSH logs in. What only Ubuntu's own archive
// could show (Ubuntu's packages and kernel) is not tried here.
func TestE2EUbuntuMinimal(t *testing.T) {
	key, keyring := newKeyring(t, "ubuntu-archive")
	archive := newUbuntuArchive(t, key)
	sshKey := newSSHKey(t)
	sshKey.debianUpgrades = false // its sources are the stand-in's
	mirror := "http://" + archive.addr + "/ubuntu"
	img := buildAsUser(t, "ubuntu", []string{
		"DIB_DEV_USER_AUTHORIZED_KEYS=" + sshKey.pub, "DIB_DISTRIBUTION_MIRROR=" + mirror, "DIB_APT_KEYRING=" + keyring,
		"DIBVM_ALLOW_NET=" + archive.addr,
	}, "vm", "ubuntu-minimal", "growroot", "devuser", "openssh-server")
	root := checkImage(t, img, "dos")
	want := "deb " + mirror + " noble main universe\n" +
		"deb " + mirror + " noble-updates main universe\n" +
		"deb " + mirror + " noble-security main universe\n" +
		"deb " + mirror + " noble-backports main universe\n"
	if got := debugfsCat(t, root, "/etc/apt/sources.list"); got != want {
		t.Errorf("sources.list:\n%s\nwant:\n%s", got, want)
	}
	if got := debugfsCat(t, root, "/etc/hostname"); got != "ubuntu\n" {
		t.Errorf("hostname %q", got)
	}
	if got := debugfsCat(t, root, "/etc/sysctl.d/99-cloudimg-ipv6.conf"); !strings.Contains(got, "net.ipv6.conf.all.use_tempaddr=0") {
		t.Errorf("99-cloudimg-ipv6.conf: %q", got)
	}
	if !debugfsExists(t, root, "/etc/systemd/network/99-dhcp-wired.network") {
		t.Error("no network configuration for the wired interfaces")
	}
	bootAndCheck(t, img, fileSize(t, root), nil, sshKey)
}

// TestE2EUbuntuCloudImage builds `vm ubuntu growroot devuser
// openssh-server` the way the ubuntu element does: from a cloud image,
// taken only once its SHA256SUMS is signed by the cloud image key and the
// image matches, and boots it. Ubuntu's cloud images cannot be reached
// here, so the cloud image is made first: an ubuntu-minimal tree from the
// stand-in archive, as a squashfs, served with sums signed by a test key
// that the build gets in DIB_UBUNTU_CLOUD_KEYRING.
func TestE2EUbuntuCloudImage(t *testing.T) {
	archiveKey, archiveKeyring := newKeyring(t, "ubuntu-archive")
	archive := newUbuntuArchive(t, archiveKey)
	mirror := "http://" + archive.addr + "/ubuntu"
	fromArchive := []string{"DIB_DISTRIBUTION_MIRROR=" + mirror, "DIB_APT_KEYRING=" + archiveKeyring}
	base := buildOutputAsUser(t, "cloudimg", "squashfs", append(fromArchive, "DIBVM_ALLOW_NET="+archive.addr), "ubuntu-minimal")
	image, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	cloudKey, cloudKeyring := newKeyring(t, "cloud-images")
	cloud := cloudImageServer(t, cloudKey, image, nil)

	sshKey := newSSHKey(t)
	sshKey.debianUpgrades = false // its sources are the stand-in's
	img := buildAsUser(t, "ubuntu", append(fromArchive,
		"DIB_CLOUD_IMAGES=http://"+cloud+"/noble/current", "DIB_UBUNTU_CLOUD_KEYRING="+cloudKeyring,
		"DIB_DEV_USER_AUTHORIZED_KEYS="+sshKey.pub, "DIBVM_ALLOW_NET="+archive.addr+","+cloud),
		"vm", "ubuntu", "growroot", "devuser", "openssh-server")
	root := checkImage(t, img, "dos")
	if got := debugfsCat(t, root, "/etc/hostname"); got != "ubuntu\n" {
		t.Errorf("hostname %q", got)
	}
	// From the cloud image: its apt sources, as the image had them.
	if got := debugfsCat(t, root, "/etc/apt/sources.list"); !strings.HasPrefix(got, "deb "+mirror+" noble main universe\n") {
		t.Errorf("sources.list:\n%s", got)
	}
	if !debugfsExists(t, root, "/usr/sbin/dkms") {
		t.Error("dkms is not installed")
	}
	bootAndCheck(t, img, fileSize(t, root), nil, sshKey)
}
