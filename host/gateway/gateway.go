// Package gateway is the helper VM's way to the host: the egress proxy,
// with debootstrap's service and the source cache behind it, as the
// machine.Service the guest reaches at egress.GuestAddr.
package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/debootstrap"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/machine"
	"github.com/dibvm/dibvm/host/sourcecache"
)

// Proxy is the egress proxy of one helper VM: the guest's only way out,
// under Policy, with the image cache and the host's services.
type Proxy struct {
	// Policy is what the proxy lets the guest reach besides the public
	// network (--allow-net), or all it lets it reach (--allow-only);
	// refusals are reported on Notices.
	Policy  egress.Policy
	Notices io.Writer
	// DownloadCache, when set, is a directory where the proxy keeps
	// downloads that never change, across runs.
	DownloadCache string
	// Signed are sources whose files the proxy checks against signed
	// sums before it keeps them in DownloadCache; Offline serves them
	// from there alone (see egress.SignedSource).
	Signed  []egress.SignedSource
	Offline bool
	// Served, when set, hears of each package and index sent whole (see
	// egress.Options.Served).
	Served func(url string, size int64, sha256 string)
	// Pins, when set, holds the build to a lock file (see
	// egress.Options.Pins).
	Pins func(u *url.URL) (sha256 string, err error)
}

var _ machine.Service = (*Proxy)(nil)

// Addr is the proxy's address in the guest.
func (p *Proxy) Addr() string { return egress.GuestAddr }

// Listen starts the proxy on the unix socket sock and returns the QEMU
// forwarding rule that leads to it: QEMU starts dibvm's relay for each
// of the guest's connections.
func (p *Proxy) Listen(dir, sock string) (string, io.Closer, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	px, err := egress.Listen(sock, p.options(dir))
	if err != nil {
		return "", nil, fmt.Errorf("start the egress proxy: %w", err)
	}
	return egress.GuestfwdRule(self, sock), px, nil
}

// Serve serves the proxy on the connections the agent forwards.
func (p *Proxy) Serve(dir string, ln net.Listener) (io.Closer, error) {
	px, err := egress.Serve(ln, p.options(dir))
	if err != nil {
		return nil, fmt.Errorf("start the egress proxy: %w", err)
	}
	return px, nil
}

// options are the proxy's cache, policy and services; debootstrap's
// service keeps its packages in the run directory dir.
func (p *Proxy) options(dir string) egress.Options {
	var cache *egress.Cache
	if p.DownloadCache != "" {
		cache = &egress.Cache{Dir: p.DownloadCache}
	}
	notices := p.Notices
	if notices == nil {
		notices = io.Discard
	}
	return egress.Options{Cache: cache, Policy: p.Policy, Notices: notices, Signed: p.Signed, Offline: p.Offline,
		Services: map[string]egress.Service{api.ServiceHost: p.services(dir)}, Served: p.Served, Pins: p.Pins}
}

// services answers api.ServiceHost: debootstrap's service, and the
// source-repositories element's cache where there is an image cache.
func (p *Proxy) services(dir string) egress.Service {
	deboot := debootstrap.Service(dir)
	if p.DownloadCache == "" {
		return deboot
	}
	sources := sourcecache.Service(filepath.Join(p.DownloadCache, sourcecache.Dir))
	return func(req *http.Request, fetch debootstrap.Fetch) *http.Response {
		if strings.HasPrefix(req.URL.Path, api.SourceCachePath) {
			return sources(req)
		}
		return deboot(req, fetch)
	}
}

// Fetch gets u as the guest's GET would get it, under the policy, through
// DownloadCache and checked against sum (see egress.Proxy.Fetch): for
// the host's own use of a URL the guest chose. It is not Served.
func (p *Proxy) Fetch(ctx context.Context, u, sum string) (io.ReadCloser, error) {
	o := p.options("")
	o.Served = nil
	px, err := egress.New(o)
	if err != nil {
		return nil, err
	}
	return px.Fetch(ctx, u, sum)
}

// Of is the Proxy that s is, as a copy the caller may change; the zero
// Proxy when s is not one (or nil).
func Of(s machine.Service) Proxy {
	if p, ok := s.(*Proxy); ok && p != nil {
		return *p
	}
	return Proxy{}
}
