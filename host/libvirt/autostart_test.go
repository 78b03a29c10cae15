package libvirt

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// The session daemon is started where libvirt's client would start one:
// a session URI without a socket, for a user who is not root, unless
// LIBVIRT_AUTOSTART=0.
func TestAutostarts(t *testing.T) {
	notRoot := os.Geteuid() != 0
	for _, c := range []struct {
		uri     string
		session Session
		want    bool
	}{
		{"qemu:///session", Session{}, notRoot},
		{"qemu+unix:///session", Session{}, notRoot},
		{"qemu:///session", Session{NoAutostart: true}, false},
		{"qemu:///session?socket=/run/x.sock", Session{}, false},
		{"qemu:///system", Session{}, false},
	} {
		u, err := url.Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		if got := autostarts(u, c.session); got != c.want {
			t.Errorf("%s %+v: autostarts %v, want %v", c.uri, c.session, got, c.want)
		}
	}
}

// The daemon is the one whose stale socket is there, as libvirt's
// client picks the mode; else virtqemud where installed, else libvirtd.
func TestSessionDaemonFollowsAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "libvirt-sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays, refusing connections
	if answers(filepath.Join(dir, "libvirt-sock")) {
		t.Fatal("a closed socket answers")
	}
	name, bin, err := sessionDaemon(dir)
	if _, lookErr := findDaemon("libvirtd"); lookErr != nil {
		if err == nil {
			t.Errorf("without libvirtd, got %s at %s", name, bin)
		}
		return
	}
	if err != nil || name != "libvirtd" || filepath.Base(bin) != "libvirtd" {
		t.Errorf("with a stale libvirt-sock: %s, %s, %v; want libvirtd", name, bin, err)
	}
}

func TestSessionDir(t *testing.T) {
	for _, c := range []struct {
		s    Session
		want string
	}{
		{Session{RuntimeDir: "/run/user/7", Home: "/home/u"}, "/run/user/7/libvirt"},
		{Session{Home: "/home/u"}, "/home/u/.cache/libvirt"},
		{Session{}, ""},
	} {
		got, err := sessionDir(c.s)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%+v: %q, %v; want %q", c.s, got, err, c.want)
		}
	}
}
