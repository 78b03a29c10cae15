package cli

import (
	"fmt"
	"net/url"
	"os"

	"github.com/dibvm/dibvm/host/envvar"
)

// imageMirrors are the variables of a build that give the image's
// package mirrors: DIB's, and debian-minimal's own.
var imageMirrors = []string{"DIB_DISTRIBUTION_MIRROR", "DIB_DEBIAN_DISTRIBUTION_MIRROR", "DIB_DEBIAN_SECURITY_MIRROR"}

// checkMirrorURL checks a package mirror's URL as the helper VM reaches
// it, through the egress proxy: http or https, with a host. A wrong one
// is said when the settings are read, not by the download an hour in.
func checkMirrorURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL (%v); give one such as %s", err, "http://deb.debian.org/debian")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("give an http:// or https:// URL, such as http://deb.debian.org/debian")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("names no host; give one such as http://deb.debian.org/debian")
	}
	return nil
}

// checkMirror checks the helper appliance's mirror, naming the flag or
// the variable that gave it.
func (f *vmFlags) checkMirror() error {
	if f.mirror == "" {
		return nil
	}
	if err := checkMirrorURL(f.mirror); err != nil {
		if v := os.Getenv("DIBVM_MIRROR"); v == f.mirror {
			return usagef("DIBVM_MIRROR=%s (for --mirror): %v", v, err)
		}
		return usagef("--mirror %q: %v", f.mirror, err)
	}
	return nil
}

// checkImageMirrors checks the image's mirror variables in a build's
// environment.
func checkImageMirrors(env []string, p *problems) {
	for _, name := range imageMirrors {
		if v := envvar.Get(env, name); v != "" {
			if err := checkMirrorURL(v); err != nil {
				p.add("%s=%s: %v", name, v, err)
			}
		}
	}
}
