package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/egress"
)

func TestHostLoopback(t *testing.T) {
	rules, err := egress.ParseRules("--allow-net", "127.0.0.1:3142,[::1]:9000")
	if err != nil {
		t.Fatal(err)
	}
	pol := egress.Policy{AllowNet: rules}
	got, err := hostLoopback(pol, map[string]string{
		"DIB_DISTRIBUTION_MIRROR": "http://127.0.0.1:3142/deb.debian.org/debian",
		"DIB_APT_SOURCES":         "deb http://localhost:3142/debian bookworm main",
		"PROBE":                   "http://127.0.0.1:8080/", // not opened, not DIB's: the proxy will refuse it
		"DIB_RELEASE":             "bookworm",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:3142", "127.0.0.1:8080", "[::1]:9000"}; !slices.Equal(got, want) {
		t.Errorf("hostLoopback = %q, want %q", got, want)
	}
	// A DIB setting whose loopback port is not opened: named, with the
	// flag that opens it, and without the URL's credentials.
	_, err = hostLoopback(pol, map[string]string{"DIB_PYPI_MIRROR_URL": "http://user:pw@localhost:3141/root/pypi"})
	want := "DIB_PYPI_MIRROR_URL names 127.0.0.1:3141, a service on this host's loopback, which the helper VM reaches only when it is opened: add --allow-net 127.0.0.1:3141"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "pw") {
		t.Errorf("unopened DIB setting: %v\nwant %s…", err, want)
	}
	if got, err := hostLoopback(egress.Policy{}, map[string]string{"DIB_RELEASE": "bookworm"}); err != nil || len(got) != 0 {
		t.Errorf("nothing on the loopback: %q, %v", got, err)
	}
}
