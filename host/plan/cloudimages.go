package plan

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/dibvm/dibvm/host/egress"
)

// The ubuntu element builds from Ubuntu's cloud image, which it takes
// only if SHA256SUMS.gpg signs SHA256SUMS with Ubuntu's cloud image key
// and the image matches the sums. The host's egress proxy checks the
// same before it keeps an image in the image cache (egress.SignedSource),
// so that two builds download it once and --offline builds from the
// cache, and the guest never writes the cache.

// ubuntuCloudImages is where the ubuntu element fetches by default: plain
// HTTP, so that the proxy sees the request; the proxy fetches from
// ubuntuCloudImagesTLS (see egress.SignedSource.Upstream).
const (
	ubuntuCloudImages    = "http://cloud-images.ubuntu.com/"
	ubuntuCloudImagesTLS = "https://cloud-images.ubuntu.com/"
)

// ubuntuCloudKeyring is the appliance's keyring of Ubuntu's cloud image
// signing keys (from Debian's ubuntu-keyring package).
const ubuntuCloudKeyring = "ubuntu-cloudimage-keyring.gpg"

// cloudImages is what Prepare found of the ubuntu element's settings.
type cloudImages struct {
	prefix  string             // DIB_CLOUD_IMAGES as a directory, when set and plain HTTP
	keyring openpgp.EntityList // DIB_UBUNTU_CLOUD_KEYRING's keys, when set
	keyName string
}

// prepareCloudImages checks the ubuntu element's settings, when the build
// has it: DIB_CLOUD_IMAGES must be a URL and DIB_UBUNTU_CLOUD_KEYRING an
// OpenPGP keyring.
func prepareCloudImages(names []string, env map[string]string) (*cloudImages, error) {
	if !slices.Contains(names, "ubuntu") {
		return nil, nil
	}
	ci := &cloudImages{}
	if v := env["DIB_CLOUD_IMAGES"]; v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("DIB_CLOUD_IMAGES=%s: want the http:// or https:// URL of the directory with the images and SHA256SUMS", v)
		}
		// The proxy sees into plain HTTP only; HTTPS passes through it
		// unchecked and uncached, and the guest checks it alone.
		if u.Scheme == "http" {
			ci.prefix = strings.TrimSuffix(v, "/") + "/"
		}
	}
	if path := env["DIB_UBUNTU_CLOUD_KEYRING"]; path != "" {
		data, err := readHostFile(path)
		if err == nil {
			ci.keyring, err = readKeyring(data)
		}
		if err != nil {
			return nil, fmt.Errorf("DIB_UBUNTU_CLOUD_KEYRING=%s: %w", path, err)
		}
		ci.keyName = "DIB_UBUNTU_CLOUD_KEYRING (" + path + ")"
	}
	return ci, nil
}

// sources are the proxy's signed sources for the build: DIB_CLOUD_IMAGES
// and Ubuntu's own server, checked with DIB_UBUNTU_CLOUD_KEYRING or else
// Ubuntu's key from the appliance's keyrings.
func (ci *cloudImages) sources(keyrings string) ([]egress.SignedSource, error) {
	if ci == nil {
		return nil, nil
	}
	ubuntu := egress.SignedSource{Prefix: ubuntuCloudImages, Upstream: ubuntuCloudImagesTLS, KeyName: "Ubuntu's cloud image key (" + ubuntuCloudKeyring + ")"}
	data, err := os.ReadFile(filepath.Join(keyrings, ubuntuCloudKeyring))
	if err == nil {
		ubuntu.Keyring, err = readKeyring(data)
	}
	if err != nil {
		return nil, fmt.Errorf("the helper appliance's %s: %w (rebuild it: dibvm appliance build)", ubuntuCloudKeyring, err)
	}
	var out []egress.SignedSource
	if ci.prefix != "" && ci.prefix != ubuntuCloudImages {
		src := egress.SignedSource{Prefix: ci.prefix, Keyring: ubuntu.Keyring, KeyName: ubuntu.KeyName}
		if ci.keyring != nil {
			src.Keyring, src.KeyName = ci.keyring, ci.keyName
		}
		out = append(out, src)
	}
	// Without DIB_CLOUD_IMAGES the build fetches from Ubuntu, and the
	// guest checks with DIB_UBUNTU_CLOUD_KEYRING when it is set.
	if ci.keyring != nil && (ci.prefix == "" || ci.prefix == ubuntuCloudImages) {
		ubuntu.Keyring, ubuntu.KeyName = ci.keyring, ci.keyName
	}
	return append(out, ubuntu), nil
}

// readKeyring reads an OpenPGP keyring, binary (as .gpg keyrings are) or
// armored.
func readKeyring(data []byte) (openpgp.EntityList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP keyring: %w", err)
		}
		return el, nil
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP keyring: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("holds no key")
	}
	return el, nil
}
