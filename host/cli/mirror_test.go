package cli

import "testing"

// What a mirror's URL must be: http or https, with a host.
func TestCheckMirrorURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://deb.debian.org/debian": true, "https://deb.debian.org/debian/": true,
		"http://[::1]:8080/ubuntu": true, "http://127.0.0.1:3142/debian": true,
		"not a url": false, "ftp://bogus/debian": false, "file:///srv/mirror": false,
		"deb.debian.org/debian": false, "http://": false, "http:///debian": false,
		"http://[::1": false, "https://:80/debian": false,
	} {
		if err := checkMirrorURL(raw); (err == nil) != ok {
			t.Errorf("checkMirrorURL(%q) = %v, want ok %v", raw, err, ok)
		}
	}
}
