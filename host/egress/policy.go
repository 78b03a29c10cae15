package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// span is a range of addresses that is local to the host, and its name.
type span struct {
	prefix netip.Prefix
	name   string
}

// localSpans are refused unless the user opens them. Besides the ranges
// that are plainly the host's or its network's, the list holds the IPv4
// special-purpose blocks that are never globally reachable and that a
// real network does use locally: 192.0.0.0/24 (DS-Lite's and NAT64's
// addresses on the host's own link), 198.18.0.0/15 (benchmarking, which
// VPNs and "fake-IP" DNS proxies use for addresses on the host itself)
// and 240.0.0.0/4 (reserved, used inside some clouds). No public mirror
// lives in any of them. The documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are left alone: nothing
// routes them, so refusing them would protect nothing.
var localSpans = []span{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"}, // Linux connects 0.0.0.0 to the host itself
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // and cloud metadata services
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF special-purpose"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"}, // RFC 8215: the local network's own translator
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"}, // unique local
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"}, // deprecated, still local where used
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// IPv6 forms that lead to an IPv4 address, which must be checked as
// well: a NAT64 gateway on the host's network turns 64:ff9b::10.0.0.1
// into a connection to 10.0.0.1.
var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052 well-known prefix
	translatedPrefix = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 IPv4-translated
	compatPrefix     = netip.MustParsePrefix("::/96")           // RFC 4291 IPv4-compatible, deprecated
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")       // RFC 3056 6to4
)

// embedded returns the IPv4 address that addr, an IPv6 address in a
// translation or tunnel form, leads to, and the form's name.
func embedded(addr netip.Addr) (netip.Addr, string, bool) {
	if !addr.Is6() {
		return netip.Addr{}, "", false
	}
	b := addr.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	switch {
	case nat64Prefix.Contains(addr):
		return last, "NAT64-mapped", true
	case translatedPrefix.Contains(addr):
		return last, "IPv4-translated", true
	case compatPrefix.Contains(addr):
		return last, "IPv4-compatible", true
	case sixToFourPrefix.Contains(addr):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4-mapped", true
	}
	return netip.Addr{}, "", false
}

// Local reports why the guest may not reach addr unless the user opens
// it: the short name of the local range it is in ("loopback", "private",
// "CGNAT", "link-local", "host's own", "host's network" and so on), or
// "" when addr is not local. host are the host's interface addresses and
// networks (see HostAddrs). IPv4-mapped IPv6 addresses count as the IPv4
// address they map, and the IPv6 forms that lead to an IPv4 address
// (NAT64's 64:ff9b::/96, IPv4-compatible, IPv4-translated, 6to4) as local
// when that address is; IPv4-compatible addresses, deprecated and unused,
// always are.
func Local(addr netip.Addr, host []netip.Prefix) string {
	if !addr.IsValid() {
		return "invalid"
	}
	addr = addr.Unmap().WithZone("")
	if r := localName(addr, host); r != "" {
		return r
	}
	if v4, form, ok := embedded(addr); ok {
		if r := localName(v4, host); r != "" {
			return form + " " + r
		}
		if form == "IPv4-compatible" {
			return form
		}
	}
	return ""
}

func localName(addr netip.Addr, host []netip.Prefix) string {
	for _, s := range localSpans {
		if s.prefix.Contains(addr) {
			return s.name
		}
	}
	// The host's own addresses first, for the more precise reason.
	for _, h := range host {
		if h.IsSingleIP() && h.Addr().Unmap().WithZone("") == addr {
			return "host's own"
		}
	}
	for _, h := range host {
		if h.Contains(addr) {
			return "host's network"
		}
	}
	return ""
}

// HostAddrs returns the host's interface addresses, each as a single-IP
// prefix, and the networks they are on, which the guest may not reach
// unless the user opens them: a service that listens on all of the host's
// addresses is as private as one on loopback, and the machines beside it
// on its network (often with global IPv6 addresses) are its neighbours,
// not the internet. Networks wider than /8 (IPv4) or /32 (IPv6) are left
// out: an interface that claims one does not say where its neighbours
// are.
func HostAddrs() ([]netip.Prefix, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var host []netip.Prefix
	for _, a := range ifaddrs {
		var ip net.IP
		var mask net.IPMask
		switch a := a.(type) {
		case *net.IPNet:
			ip, mask = a.IP, a.Mask
		case *net.IPAddr:
			ip = a.IP
		}
		// net.IP often holds an IPv4 address in 16 bytes.
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		host = append(host, netip.PrefixFrom(addr, addr.BitLen()))
		if ones, bits := mask.Size(); bits > 0 && ones < addr.BitLen() && ones >= map[int]int{32: 8, 128: 32}[addr.BitLen()] {
			host = append(host, netip.PrefixFrom(addr, ones).Masked())
		}
	}
	return host, nil
}

// Rule names destinations for --allow-net or --allow-only: a host name,
// matched against the name the guest asked for, or an address or a CIDR,
// matched against every address the name resolved to. A port narrows
// either to that port.
type Rule struct {
	Name   string       // lower case, without a trailing dot; "" in an address rule
	Prefix netip.Prefix // in an address rule; one address is a /32 or a /128
	Port   uint16       // 0 matches every port
}

// ParseRule parses HOST[:PORT], IP[:PORT] (an IPv6 address with a port in
// brackets: [::1]:3142) or CIDR (without a port).
func ParseRule(s string) (Rule, error) {
	if s == "" {
		return Rule{}, errors.New("empty")
	}
	if strings.Contains(s, "://") {
		return Rule{}, errors.New("want HOST[:PORT], not a URL")
	}
	if strings.Contains(s, "/") {
		p, err := parseCIDR(s)
		return Rule{Prefix: p}, err
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return addrRule(a, 0)
	}
	host, port := s, uint16(0)
	if strings.Contains(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return Rule{}, errors.New("want HOST[:PORT], IP[:PORT], [IPv6]:PORT or CIDR")
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Rule{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		host, port = h, uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return addrRule(a, port)
	}
	name := canonicalName(host)
	if err := checkName(name); err != nil {
		return Rule{}, err
	}
	return Rule{Name: name, Port: port}, nil
}

func addrRule(a netip.Addr, port uint16) (Rule, error) {
	if a.Zone() != "" {
		return Rule{}, fmt.Errorf("an IPv6 zone (%%%s) cannot be allowed", a.Zone())
	}
	a = a.Unmap()
	return Rule{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: port}, nil
}

// parseCIDR parses ADDR/BITS itself, to say which half is wrong.
func parseCIDR(s string) (netip.Prefix, error) {
	addrPart, bitsPart, _ := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address (want a CIDR such as 10.0.0.0/8)", addrPart)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("an IPv6 zone (%%%s) cannot be allowed", a.Zone())
	}
	bits, err := strconv.Atoi(bitsPart)
	if err != nil || bitsPart == "" || bitsPart[0] < '0' || bitsPart[0] > '9' {
		return netip.Prefix{}, fmt.Errorf("prefix length %q is not a number", bitsPart)
	}
	if bits > a.BitLen() {
		v := "IPv4"
		if a.Is6() {
			v = "IPv6"
		}
		return netip.Prefix{}, fmt.Errorf("prefix length %d is out of range for %s (0-%d)", bits, v, a.BitLen())
	}
	// Addresses are matched unmapped, so ::ffff:10.0.0.0/104 is 10.0.0.0/8.
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// checkName accepts a DNS name, in lower case, whose last label is not
// a number: "127.1" or "3142" would be a mistake (an address the
// system's resolver would read its own way, or a port without a host).
func checkName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name", name)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q is not a host name", name)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name (%q is not allowed in one)", name, c)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("%q is a number, not a host name or a whole IP address", name)
	}
	return nil
}

func canonicalName(host string) string { return strings.ToLower(strings.TrimSuffix(host, ".")) }

// ParseRules parses the values of one flag (or its environment variable,
// named by label), each a list separated by commas or spaces. An error
// names label and the value at fault.
func ParseRules(label string, values ...string) ([]Rule, error) {
	var rules []Rule
	for _, v := range values {
		for _, f := range splitList(v) {
			r, err := ParseRule(f)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", label, f, err)
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// splitList splits a list of rules separated by commas or white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// String returns the rule as ParseRule reads it.
func (r Rule) String() string {
	switch {
	case r.Name != "" && r.Port != 0:
		return net.JoinHostPort(r.Name, strconv.Itoa(int(r.Port)))
	case r.Name != "":
		return r.Name
	case r.Prefix.IsSingleIP() && r.Port != 0:
		return netip.AddrPortFrom(r.Prefix.Addr(), r.Port).String()
	case r.Prefix.IsSingleIP():
		return r.Prefix.Addr().String()
	}
	return r.Prefix.String()
}

// matches reports whether r names a connection to addr:port that the
// guest asked for by name ("" when it gave an address).
func (r Rule) matches(name string, addr netip.Addr, port uint16) bool {
	if r.Port != 0 && r.Port != port {
		return false
	}
	if r.Name == "localhost" && name == "" {
		// An address the name always means (see isLocalhost).
		return isLocalhost(addr)
	}
	if r.Name != "" {
		return r.Name == name
	}
	return addr.IsValid() && r.Prefix.Contains(addr)
}

// Policy is what the user opened and restricted. The zero Policy refuses
// only what is local to the host.
type Policy struct {
	// AllowNet opens destinations, local ones included (--allow-net).
	AllowNet []Rule
	// AllowOnly, when not empty, restricts the guest to the destinations
	// it or AllowNet names (--allow-only). It opens nothing local: a name
	// in it may resolve anywhere, and 0.0.0.0/0 in it should not open
	// the host's loopback.
	AllowOnly []Rule
}

// Check decides whether the guest may connect to addr:port, an address
// of host, the name or IP literal the guest asked for. own are the host's
// own addresses. Check returns nil when the connection is allowed.
func (p Policy) Check(host string, addr netip.Addr, port uint16, own []netip.Prefix) *Refused {
	name := requestedName(host)
	addr = addr.Unmap().WithZone("")
	for _, r := range p.AllowNet {
		if r.matches(name, addr, port) {
			return nil
		}
	}
	if local := Local(addr, own); local != "" {
		return &Refused{Name: name, Addr: addr, Port: port, Reason: local + " address", Flag: "--allow-net"}
	}
	if len(p.AllowOnly) > 0 && !matchesAny(p.AllowOnly, name, addr, port) {
		return &Refused{Name: name, Addr: addr, Port: port, Reason: "not named by --allow-only", Flag: "--allow-only"}
	}
	return nil
}

// mayReach reports whether some address of the name could pass Check.
// With only names in the allowlist, a name not on it is refused before
// it is looked up, so that the guest cannot use the host's resolver to
// send data out in DNS queries.
func (p Policy) mayReach(name string, port uint16) bool {
	if len(p.AllowOnly) == 0 {
		return true
	}
	for _, rules := range [][]Rule{p.AllowNet, p.AllowOnly} {
		for _, r := range rules {
			if r.Name == "" || r.matches(name, netip.Addr{}, port) {
				return true
			}
		}
	}
	return false
}

func matchesAny(rules []Rule, name string, addr netip.Addr, port uint16) bool {
	for _, r := range rules {
		if r.matches(name, addr, port) {
			return true
		}
	}
	return false
}

// requestedName is the name the guest asked for, for matching rules, or
// "" when it asked for an address.
func requestedName(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return canonicalName(host)
}

// Refused is a connection the guest may not make.
type Refused struct {
	Name   string     // the name the guest asked for; "" if it gave an address
	Addr   netip.Addr // the address refused; invalid if the name was refused unresolved
	Port   uint16
	Reason string // "private address", "not named by --allow-only", …
	Flag   string // the flag that would allow it
}

func (e *Refused) Error() string {
	var b strings.Builder
	b.WriteString("refused a connection from the helper VM to ")
	if e.Addr.IsValid() {
		b.WriteString(netip.AddrPortFrom(e.Addr, e.Port).String())
		b.WriteString(" (")
		if e.Name != "" {
			b.WriteString(e.Name + ", ")
		}
	} else {
		b.WriteString(net.JoinHostPort(e.Name, strconv.Itoa(int(e.Port))))
		b.WriteString(" (")
	}
	b.WriteString(e.Reason + "); to allow it, add ")
	if e.Name != "" {
		b.WriteString(e.Flag + " " + e.Name)
		if e.Addr.IsValid() {
			b.WriteString(" or ")
		}
	}
	if e.Addr.IsValid() {
		b.WriteString(e.Flag + " " + e.Addr.String())
	}
	return b.String()
}
