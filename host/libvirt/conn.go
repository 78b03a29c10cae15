// Package libvirt runs a vm.Machine as a transient libvirt domain: it
// finds and connects to the user's libvirt daemon, turns the description
// into a domain, and watches and destroys it. It speaks libvirt's RPC
// protocol through go-libvirt, which never starts a daemon: where the
// user's session daemon is not running, autostart.go starts it as
// libvirt's own client library would.
package libvirt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/dibvm/dibvm/host/qemu"
)

// Conn is a connection to a libvirt daemon's QEMU driver.
type Conn struct {
	URI string
	// Notices gets one-line messages for the user (uploads).
	Notices io.Writer
	l       *golibvirt.Libvirt
	// ssh carries the connection to a remote daemon (qemu+ssh://).
	ssh *ssh.Client
	// system is the host's system daemon, which runs QEMU as its own
	// user unless a domain says otherwise (see Create).
	system bool

	mu      sync.Mutex
	stages  []*stage
	domains map[string]*Domain // started on this connection, by name
}

// Session is what of the user's login session reaching a daemon takes;
// host/cli reads it from the environment.
type Session struct {
	// RuntimeDir is $XDG_RUNTIME_DIR, where a session daemon's socket
	// is.
	RuntimeDir string
	// SSHAgent is $SSH_AUTH_SOCK, the ssh-agent whose keys open a
	// qemu+ssh:// host.
	SSHAgent string
	// Home is the user's home directory: a session daemon's socket
	// under it, and the SSH keys and known_hosts under ~/.ssh.
	Home string
	// NoAutostart is LIBVIRT_AUTOSTART=0: start no session daemon
	// where none runs.
	NoAutostart bool
	// Notices hears that a session daemon was started.
	Notices io.Writer
}

// DefaultURI is the connection a user gets without --connect, as
// libvirt's own client picks it: the per-user session daemon, or for
// root the system one.
func DefaultURI() string {
	if os.Getuid() == 0 {
		return "qemu:///system"
	}
	return "qemu:///session"
}

// minVersion is the oldest libvirt dibvm drives: 6.0 is the oldest still
// shipped by a maintained distribution (Ubuntu 20.04). dibvm is tested
// with Debian 12's 9.0.
const minVersion = 6_000_000

// CheckURI says what is wrong with uri before anything is dialed.
func CheckURI(uri string) error {
	_, err := parseURI(uri)
	return err
}

func parseURI(uri string) (*url.URL, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("--connect %s: %v", uri, err)
	}
	switch {
	case u.Scheme == "qemu" && u.Host == "":
	case u.Scheme == "qemu+unix" && u.Host == "":
	case u.Scheme == "qemu+ssh" && u.Host != "":
	case strings.HasPrefix(u.Scheme, "qemu+"):
		return nil, fmt.Errorf("--connect %s: dibvm reaches a remote daemon over SSH only (qemu+ssh://user@host/session), which also carries the agent's channel and the console", redact(u))
	default:
		return nil, fmt.Errorf("--connect %s: dibvm runs the helper VM on libvirt's QEMU driver: give qemu:///session or qemu:///system", uri)
	}
	switch {
	case u.Path == "/session":
	case u.Path == "/system" && u.Scheme != "qemu+ssh":
		if os.Getuid() != 0 {
			// The daemon makes a domain's sockets and firmware variables
			// as root or as its own user; a domain labelled with the
			// user's ids (see Create) could not reach them.
			return nil, fmt.Errorf("--connect %s: dibvm uses the host's libvirt daemon only when run as root: use qemu:///session, your own daemon", uri)
		}
	case u.Path == "/system":
		return nil, fmt.Errorf("--connect %s: dibvm builds on a remote host's session daemon (qemu+ssh://user@host/session), whose QEMU runs as that user and can use the pool's files", redact(u))
	default:
		return nil, fmt.Errorf("--connect %s: give qemu:///session (your own daemon) or qemu:///system (the host's)", uri)
	}
	return u, nil
}

// Connect connects to the daemon behind uri, as the user of session,
// and checks that it can run the helper. Its errors name the URI and say
// what to do.
func Connect(uri string, session Session) (*Conn, error) {
	u, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	c := &Conn{URI: redact(u), domains: map[string]*Domain{}, system: u.Path == "/system"}
	if u.Scheme == "qemu+ssh" {
		if c.ssh, err = dialSSH(u, session.SSHAgent, session.Home); err != nil {
			return nil, err
		}
		sock, err := remoteSessionSocket(c.ssh, u)
		if err != nil {
			c.ssh.Close()
			return nil, err
		}
		c.l = golibvirt.NewWithDialer(sshDialer{c.ssh, sock})
		if err := c.l.ConnectToURI(golibvirt.QEMUSession); err != nil {
			c.ssh.Close()
			return nil, fmt.Errorf("%s: connect to libvirt at %s on the remote: %w", c.URI, sock, err)
		}
	} else {
		sock, err := localSocket(u, session)
		if err != nil {
			return nil, err
		}
		c.l = golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(5*time.Second)))
		// The daemon is asked for the driver's URI, without the transport
		// (qemu+unix://), as libvirt's own client does.
		if err := c.l.ConnectToURI(golibvirt.ConnectURI("qemu://" + u.Path)); err != nil {
			return nil, connectError(uri, sock, err)
		}
	}
	l := c.l
	v, err := l.ConnectGetLibVersion()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	if v < minVersion {
		c.Close()
		return nil, fmt.Errorf("%s: libvirt %s is too old for dibvm (it needs %s or later): upgrade libvirt, or use --backend qemu", uri, version(v), version(minVersion))
	}
	if events, err := l.LifecycleEvents(context.Background()); err == nil {
		go c.events(events)
	}
	return c, nil
}

// events tells each domain started here that it stopped, and why, as
// libvirt reports it: once a transient domain is gone, it can no longer
// be asked.
func (c *Conn) events(events <-chan golibvirt.DomainEventLifecycleMsg) {
	for e := range events {
		if golibvirt.DomainEventType(e.Event) != golibvirt.DomainEventStopped {
			continue
		}
		c.mu.Lock()
		d := c.domains[e.Dom.Name]
		c.mu.Unlock()
		if d != nil {
			d.stopped(stoppedReason(e.Detail))
		}
	}
}

// Probe connects to uri, looks for a remote's pool and disconnects:
// whether a build could start there, with Connect's errors.
func Probe(uri string, session Session) error {
	c, err := Connect(uri, session)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.Remote() {
		_, err = c.pool()
	}
	return err
}

// Version is the daemon's libvirt version, as 9.0.0.
func (c *Conn) Version() string {
	v, err := c.l.ConnectGetLibVersion()
	if err != nil {
		return "(unknown)"
	}
	return version(v)
}

func version(v uint64) string {
	return fmt.Sprintf("%d.%d.%d", v/1_000_000, v/1000%1000, v%1000)
}

// Close removes what remote builds staged and disconnects. A domain
// started with autodestroy goes with the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	stages := c.stages
	c.stages = nil
	c.mu.Unlock()
	for _, s := range stages {
		s.remove()
	}
	err := c.l.Disconnect()
	if c.ssh != nil {
		c.ssh.Close()
	}
	return err
}

// Remote says whether the daemon is on another host, where the user's
// files are not.
func (c *Conn) Remote() bool { return c.ssh != nil }

// IsRemote says whether uri names a daemon on another host.
func IsRemote(uri string) bool { return strings.HasPrefix(uri, "qemu+ssh:") }

// Fetch brings the first length bytes of the remote disk behind the local
// disk path back into it; for a daemon on this host it does nothing.
func (c *Conn) Fetch(local string, length int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stages {
		if _, ok := s.vols[local]; ok {
			return s.fetch(local, length)
		}
	}
	if c.Remote() {
		return fmt.Errorf("no remote disk for %s", local)
	}
	return nil
}

// sshDialer reaches a daemon's unix socket through an SSH connection.
type sshDialer struct {
	c    *ssh.Client
	sock string
}

func (d sshDialer) Dial() (net.Conn, error) { return d.c.Dial("unix", d.sock) }

// findSocket is the daemon's unix socket for u: the one the URI names
// (?socket=), else the modular QEMU daemon's, else the monolithic
// daemon's, where libvirt's own client looks (under runtimeDir, the
// user's $XDG_RUNTIME_DIR, and their home).
func findSocket(u *url.URL, runtimeDir, home string) (string, error) {
	if s := u.Query().Get("socket"); s != "" {
		return s, nil
	}
	uri := u.Scheme + "://" + u.Path
	if u.Path == "/system" {
		socks := []string{"/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock"}
		for _, p := range socks {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s: the host's libvirt daemon is not running (no %s): start it (`systemctl start libvirtd`, or virtqemud.socket), or use --connect qemu:///session", uri, strings.Join(socks, " or "))
	}
	var tried []string
	for _, p := range sessionSockets(runtimeDir, home) {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%s: no libvirt session daemon is running for you (no %s): start one with `virtqemud --daemon` or `libvirtd --daemon` (or `systemctl --user start virtqemud.socket`), or use --backend qemu", uri, strings.Join(tried, " or "))
}

// sessionSockets are where a session daemon's socket may be, in the
// order libvirt's client looks, for a user with these XDG_RUNTIME_DIR and
// HOME (either may be empty): the modular QEMU daemon's, then the
// monolithic daemon's.
func sessionSockets(runtimeDir, home string) []string {
	var dirs, socks []string
	if runtimeDir != "" {
		dirs = append(dirs, runtimeDir+"/libvirt")
	}
	if home != "" {
		dirs = append(dirs, home+"/.cache/libvirt")
	}
	for _, d := range dirs {
		socks = append(socks, d+"/virtqemud-sock", d+"/libvirt-sock")
	}
	return socks
}

func connectError(uri, sock string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied on %s: join the group that owns it (often libvirt: `usermod -aG libvirt $USER`, then log in again), or use --connect qemu:///session", uri, sock)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s: the libvirt daemon is not running (%s refuses connections): start it again, or use --backend qemu", uri, sock)
	}
	return fmt.Errorf("%s: connect to libvirt at %s: %w", uri, sock, err)
}

// DomainTypes are the domain types (kvm, hvf, qemu) the daemon can run
// guests of arch (libvirt's name: x86_64, aarch64) with.
func (c *Conn) DomainTypes(arch string) ([]string, error) {
	s, err := c.l.ConnectGetCapabilities()
	if err != nil {
		return nil, fmt.Errorf("%s: capabilities: %w", c.URI, err)
	}
	var caps struct {
		Guests []struct {
			OSType string `xml:"os_type"`
			Arch   struct {
				Name    string `xml:"name,attr"`
				Domains []struct {
					Type string `xml:"type,attr"`
				} `xml:"domain"`
			} `xml:"arch"`
		} `xml:"guest"`
	}
	if err := xml.Unmarshal([]byte(s), &caps); err != nil {
		return nil, fmt.Errorf("%s: capabilities: %w", c.URI, err)
	}
	var types []string
	for _, g := range caps.Guests {
		if g.OSType != "hvm" || g.Arch.Name != arch {
			continue
		}
		for _, d := range g.Arch.Domains {
			types = append(types, d.Type)
		}
	}
	return types, nil
}

// Accelerators are those to try, in order, for a choice of auto, kvm,
// hvf or tcg: what the daemon's capabilities offer for goarch guests,
// not what this host has, for the daemon may be elsewhere.
func (c *Conn) Accelerators(choice, arch string) ([]string, error) {
	if err := qemu.CheckAccelName(choice); err != nil {
		return nil, err
	}
	types, err := c.DomainTypes(Arch(arch))
	if err != nil {
		return nil, err
	}
	want := []string{choice}
	if choice == "" || choice == "auto" {
		want = []string{"kvm", "hvf", "tcg"}
	}
	var accels []string
	for _, a := range want {
		if slices.Contains(types, DomainType(a)) {
			accels = append(accels, a)
		}
	}
	if len(accels) == 0 {
		if len(types) == 0 {
			return nil, fmt.Errorf("%s runs no %s guests: install its QEMU emulator there (%s)", c.URI, Arch(arch), qemu.InstallHint(arch))
		}
		offered := make([]string, len(types))
		for i, t := range types {
			if t == "qemu" {
				t = "tcg"
			}
			offered[i] = t
		}
		return nil, fmt.Errorf("--accel %s: %s runs %s guests with %s only: use --accel auto", choice, c.URI, Arch(arch), strings.Join(offered, " or "))
	}
	return accels, nil
}
