package egress

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
)

// DIB's documentation tells users to cache through a proxy or
// apt-cacher-ng on their own machine, so settings often name the host's
// loopback: DIB_DISTRIBUTION_MIRROR=http://127.0.0.1:3142/deb.debian.org/debian.
// Inside the helper VM that address is the VM's own. The guest therefore
// listens on each such address itself and carries every connection
// through the proxy's CONNECT to the same address on the host (see
// guestagent/hostloopback): any tool, whatever it makes of http_proxy
// and no_proxy, reaches the host's service, and the policy still decides.

// localhostAddrs are what "localhost" means, on the host as in the guest
// (RFC 6761: always the loopback), in the order tried.
var localhostAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}

// urlPattern finds URLs in a setting's value, which may hold several
// (DIB_APT_SOURCES_CONF, DIB_PIP_INDEX_URL with extra indexes, …).
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>,;|]+`)

// defaultPorts are the ports of the schemes a build's tools fetch with,
// for URLs that name none.
var defaultPorts = map[string]uint16{"http": 80, "https": 443, "ftp": 21, "git": 9418}

// LoopbackURLs returns the addresses on the loopback that the URLs in
// value connect to: 127.0.0.0/8 and ::1 as written, localhost as
// 127.0.0.1 (a client that tries ::1 first is refused there, by the
// guest's kernel, and goes on to 127.0.0.1, as on the host). URLs of
// other hosts, of schemes without a known port, and the unparsable are
// left out.
func LoopbackURLs(value string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range urlPattern.FindAllString(value, -1) {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		port := defaultPorts[u.Scheme]
		if p := u.Port(); p != "" {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				continue
			}
			port = uint16(n)
		}
		addr, ok := loopbackHost(u.Hostname())
		if !ok || port == 0 {
			continue
		}
		out = append(out, netip.AddrPortFrom(addr, port))
	}
	return out
}

// loopbackHost is the address of host if it names the loopback.
func loopbackHost(host string) (netip.Addr, bool) {
	if canonicalName(host) == "localhost" {
		return localhostAddrs[0], true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, a.IsLoopback()
}

// HostLoopback returns the addresses of the host's loopback the guest
// carries to the host: those of urls, and those --allow-net names with a
// port (localhost:3142 as 127.0.0.1:3142), sorted, each once. A rule
// without a port (127.0.0.1, localhost) opens every port, and the guest
// cannot listen on all of them: those come only from urls.
func (p Policy) HostLoopback(urls []netip.AddrPort) []netip.AddrPort {
	out := slices.Clone(urls)
	for _, r := range p.AllowNet {
		if r.Port == 0 {
			continue
		}
		switch {
		case r.Name == "localhost":
			out = append(out, netip.AddrPortFrom(localhostAddrs[0], r.Port))
		case r.Name == "" && r.Prefix.IsSingleIP() && r.Prefix.Addr().IsLoopback():
			out = append(out, netip.AddrPortFrom(r.Prefix.Addr(), r.Port))
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(out)
}

// OpensLoopback reports whether --allow-net opens a, an address of the
// host's loopback.
func (p Policy) OpensLoopback(a netip.AddrPort) bool {
	return matchesAny(p.AllowNet, "", a.Addr().Unmap(), a.Port())
}

// isLocalhost reports whether addr is one that "localhost" means: a rule
// that opens the name opens these addresses too, since a guest that asks
// for localhost may be carried to the host by address.
func isLocalhost(addr netip.Addr) bool { return slices.Contains(localhostAddrs, addr) }

// localhost is what the proxy resolves "localhost" to, without asking a
// resolver: of 127.0.0.1 and ::1, those the policy opens on port, or
// 127.0.0.1 alone, for the refusal to name, when it opens neither. (A
// host resolver would give both, and one refused address refuses a
// whole name.)
func (p Policy) localhost(port uint16, own []netip.Prefix) []netip.Addr {
	var open []netip.Addr
	for _, a := range localhostAddrs {
		if p.Check("localhost", a, port, own) == nil {
			open = append(open, a)
		}
	}
	if len(open) == 0 {
		return localhostAddrs[:1]
	}
	return open
}
