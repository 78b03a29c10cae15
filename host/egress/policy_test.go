package egress

import (
	"net/netip"
	"strings"
	"testing"
)

// fakeOwn stands in for the host's interface addresses and networks, as
// HostAddrs gives them. The documentation ranges are not refused by
// themselves, so these count only as the host's own or its network.
var fakeOwn = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.1/32"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("192.168.1.20/32"),
	netip.MustParsePrefix("203.0.113.9/32"),
	netip.MustParsePrefix("2001:db8:1::9/128"),
	netip.MustParsePrefix("2001:db8:1::/64"),
	netip.MustParsePrefix("fe80::1234/128"),
}

func TestLocal(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		// IPv4
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.254", "CGNAT"},
		{"100.128.0.1", ""},
		{"127.0.0.1", "loopback"},
		{"127.1.2.3", "loopback"},
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"172.32.0.1", ""},
		{"192.0.0.170", "IETF special-purpose"},
		{"192.168.1.10", "private"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.254", "benchmarking"},
		{"198.20.0.1", ""},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"151.101.2.132", ""},
		{"8.8.8.8", ""},
		{"192.0.2.1", ""}, // documentation: not routed, not refused
		// IPv4-mapped IPv6 is the IPv4 address.
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:100.64.0.1", "CGNAT"},
		{"::ffff:151.101.2.132", ""},
		// IPv6
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},
		{"fec0::1", "site-local"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		{"2a04:4e42::644", ""},
		{"2606:4700::1111", ""},
		// IPv6 forms that lead to an IPv4 address.
		{"64:ff9b::10.0.0.1", "NAT64-mapped private"},
		{"64:ff9b::7f00:1", "NAT64-mapped loopback"},
		{"64:ff9b::169.254.169.254", "NAT64-mapped link-local"},
		{"64:ff9b::151.101.2.132", ""}, // DNS64 networks rely on these
		{"::127.0.0.1", "IPv4-compatible loopback"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:0:10.0.0.1", "IPv4-translated private"},
		{"2002:a00:1::1", "6to4-mapped private"},
		{"2002:a9fe:a9fe::1", "6to4-mapped link-local"},
		{"2002:9765:284::1", ""},
		// The host's own addresses, however written.
		{"203.0.113.9", "host's own"},
		{"::ffff:203.0.113.9", "host's own"},
		{"64:ff9b::203.0.113.9", "NAT64-mapped host's own"},
		{"2001:db8:1::9", "host's own"},
		// Its neighbours on a network with global addresses.
		{"2001:db8:1::10", "host's network"},
		{"2001:db8:2::10", ""},
		// The local network's own NAT64 translator (RFC 8215).
		{"64:ff9b:1::a00:1", "local-use NAT64"},
		{"64:ff9b:1:ffff::1", "local-use NAT64"},
		{"203.0.113.10", ""},
	} {
		if got := Local(netip.MustParseAddr(tc.addr), fakeOwn); got != tc.want {
			t.Errorf("Local(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := Local(netip.Addr{}, nil); got == "" {
		t.Error("the zero address is not refused")
	}
	// Without the host's addresses, a public one of the host's is public.
	if got := Local(netip.MustParseAddr("203.0.113.9"), nil); got != "" {
		t.Errorf("Local(203.0.113.9, no own addresses) = %q", got)
	}
}

func TestParseRules(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // the rules' String, joined by spaces
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"mirror.example"}, "mirror.example"},
		{[]string{"Mirror.Example."}, "mirror.example"},
		{[]string{"mirror.example:3142"}, "mirror.example:3142"},
		{[]string{"localhost"}, "localhost"},
		{[]string{"127.0.0.1:3142"}, "127.0.0.1:3142"},
		{[]string{"127.0.0.1"}, "127.0.0.1"},
		{[]string{"::1"}, "::1"},
		{[]string{"[::1]"}, "::1"},
		{[]string{"[::1]:3142"}, "[::1]:3142"},
		{[]string{"::ffff:10.0.0.1"}, "10.0.0.1"},
		{[]string{"10.0.0.0/8"}, "10.0.0.0/8"},
		{[]string{"10.1.2.3/8"}, "10.0.0.0/8"},
		{[]string{"fd00::/8"}, "fd00::/8"},
		{[]string{"::ffff:10.0.0.0/104"}, "10.0.0.0/8"},
		{[]string{"0.0.0.0/0"}, "0.0.0.0/0"},
		{[]string{"a.example,b.example", "c.example"}, "a.example b.example c.example"},
		{[]string{" a.example  b.example,,c.example:80 "}, "a.example b.example c.example:80"},
		{[]string{"apt_cache.lan"}, "apt_cache.lan"},
	} {
		rules, err := ParseRules("--allow-net", tc.in...)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var got []string
		for _, r := range rules {
			got = append(got, r.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/33", `--allow-net "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)`},
		{"fd00::/129", `--allow-net "fd00::/129": prefix length 129 is out of range for IPv6 (0-128)`},
		{"10.0.0.0/", `--allow-net "10.0.0.0/": prefix length "" is not a number`},
		{"10.0.0.0/-1", `--allow-net "10.0.0.0/-1": prefix length "-1" is not a number`},
		{"10.0.0.0/8:80", `--allow-net "10.0.0.0/8:80": prefix length "8:80" is not a number`},
		{"mirror.example/8", `--allow-net "mirror.example/8": "mirror.example" is not an IP address (want a CIDR such as 10.0.0.0/8)`},
		{"mirror.example:0", `--allow-net "mirror.example:0": port "0" is not a number from 1 to 65535`},
		{"mirror.example:65536", `--allow-net "mirror.example:65536": port "65536" is not a number from 1 to 65535`},
		{"mirror.example:http", `--allow-net "mirror.example:http": port "http" is not a number from 1 to 65535`},
		{"mirror.example:", `--allow-net "mirror.example:": port "" is not a number from 1 to 65535`},
		{"::1:3142:x", `--allow-net "::1:3142:x": want HOST[:PORT], IP[:PORT], [IPv6]:PORT or CIDR`},
		{"127.1", `--allow-net "127.1": "127.1" is a number, not a host name or a whole IP address`},
		{"3142", `--allow-net "3142": "3142" is a number, not a host name or a whole IP address`},
		{"*.example", `--allow-net "*.example": "*.example" is not a host name ('*' is not allowed in one)`},
		{"a..example", `--allow-net "a..example": "a..example" is not a host name`},
		{"fe80::1%eth0", `--allow-net "fe80::1%eth0": an IPv6 zone (%eth0) cannot be allowed`},
		{"http://mirror.example/", `--allow-net "http://mirror.example/": want HOST[:PORT], not a URL`},
	} {
		_, err := ParseRules("--allow-net", "ok.example", tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got error %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func rules(t *testing.T, s string) []Rule {
	t.Helper()
	r, err := ParseRules("test", s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPolicyCheck(t *testing.T) {
	for _, tc := range []struct {
		allowNet, allowOnly string
		host, addr          string
		port                uint16
		want                string // "" to allow, else the refusal's reason
	}{
		// By default, everything public and nothing local.
		{"", "", "deb.debian.org", "151.101.2.132", 80, ""},
		{"", "", "deb.debian.org", "2a04:4e42::644", 443, ""},
		{"", "", "internal.example", "10.1.2.3", 80, "private address"},
		{"", "", "10.1.2.3", "10.1.2.3", 80, "private address"},
		{"", "", "self.example", "203.0.113.9", 80, "host's own address"},
		{"", "", "169.254.169.254", "169.254.169.254", 80, "link-local address"},
		// --allow-net by name matches the name asked for, in any case.
		{"internal.example", "", "internal.example", "10.1.2.3", 80, ""},
		{"internal.example", "", "Internal.Example.", "10.1.2.3", 80, ""},
		{"internal.example", "", "other.example", "10.1.2.3", 80, "private address"},
		{"internal.example", "", "10.1.2.3", "10.1.2.3", 80, "private address"},
		{"internal.example:3142", "", "internal.example", "10.1.2.3", 3142, ""},
		{"internal.example:3142", "", "internal.example", "10.1.2.3", 80, "private address"},
		// --allow-net by address or CIDR matches every name.
		{"127.0.0.1:3142", "", "127.0.0.1", "127.0.0.1", 3142, ""},
		{"127.0.0.1:3142", "", "localhost", "127.0.0.1", 3142, ""},
		{"127.0.0.1:3142", "", "127.0.0.1", "127.0.0.1", 80, "loopback address"},
		{"127.0.0.1:3142", "", "::1", "::1", 3142, "loopback address"},
		{"127.0.0.1:3142", "", "::ffff:127.0.0.1", "::ffff:127.0.0.1", 3142, ""},
		// localhost always means the loopback: a rule for the name opens
		// 127.0.0.1 and ::1 asked for by address, and no other.
		{"localhost:3142", "", "127.0.0.1", "127.0.0.1", 3142, ""},
		{"localhost:3142", "", "::1", "::1", 3142, ""},
		{"localhost:3142", "", "127.0.0.2", "127.0.0.2", 3142, "loopback address"},
		{"localhost:3142", "", "127.0.0.1", "127.0.0.1", 80, "loopback address"},
		{"localhost", "", "10.1.2.3", "10.1.2.3", 80, "private address"},
		{"10.0.0.0/8", "", "a.example", "10.9.9.9", 443, ""},
		{"10.0.0.0/8", "", "a.example", "172.16.0.1", 443, "private address"},
		{"fd00::/8", "", "a.example", "fd12::1", 443, ""},
		{"203.0.113.9", "", "self.example", "203.0.113.9", 80, ""},
		// --allow-only restricts to its names and those of --allow-net.
		{"", "deb.debian.org", "deb.debian.org", "151.101.2.132", 80, ""},
		{"", "deb.debian.org", "security.debian.org", "151.101.2.132", 80, "not named by --allow-only"},
		{"", "deb.debian.org", "151.101.2.132", "151.101.2.132", 80, "not named by --allow-only"},
		{"", "deb.debian.org:80", "deb.debian.org", "151.101.2.132", 443, "not named by --allow-only"},
		{"", "151.101.0.0/16", "deb.debian.org", "151.101.2.132", 443, ""},
		{"", "151.101.0.0/16", "elsewhere.example", "8.8.8.8", 443, "not named by --allow-only"},
		{"127.0.0.1:3142", "deb.debian.org", "127.0.0.1", "127.0.0.1", 3142, ""},
		{"127.0.0.1:3142", "deb.debian.org", "deb.debian.org", "151.101.2.132", 80, ""},
		{"127.0.0.1:3142", "deb.debian.org", "8.8.8.8", "8.8.8.8", 53, "not named by --allow-only"},
		// ... and opens nothing local, not by name, address or CIDR.
		{"", "deb.debian.org", "deb.debian.org", "10.0.0.1", 80, "private address"},
		{"", "127.0.0.1:3142", "127.0.0.1", "127.0.0.1", 3142, "loopback address"},
		{"", "0.0.0.0/0", "anything.example", "127.0.0.1", 80, "loopback address"},
		{"", "0.0.0.0/0", "anything.example", "169.254.169.254", 80, "link-local address"},
		{"", "0.0.0.0/0", "anything.example", "151.101.2.132", 80, ""},
		{"", "0.0.0.0/0", "anything.example", "2a04:4e42::644", 80, "not named by --allow-only"},
		{"mirror.lan", "mirror.lan", "mirror.lan", "192.168.1.5", 80, ""},
	} {
		p := Policy{AllowNet: rules(t, tc.allowNet), AllowOnly: rules(t, tc.allowOnly)}
		r := p.Check(tc.host, netip.MustParseAddr(tc.addr), tc.port, fakeOwn)
		got := ""
		if r != nil {
			got = r.Reason
		}
		if got != tc.want {
			t.Errorf("--allow-net %q --allow-only %q, %s (%s) port %d: got %q, want %q",
				tc.allowNet, tc.allowOnly, tc.host, tc.addr, tc.port, got, tc.want)
		}
	}
}

// With only names in --allow-only, other names are refused before they
// are looked up; an address rule anywhere means a name may resolve into
// it, so it must be looked up.
func TestPolicyMayReach(t *testing.T) {
	for _, tc := range []struct {
		allowNet, allowOnly, name string
		port                      uint16
		want                      bool
	}{
		{"", "", "anything.example", 80, true},
		{"", "deb.debian.org", "deb.debian.org", 80, true},
		{"", "deb.debian.org", "evil.example", 80, false},
		{"", "deb.debian.org:80", "deb.debian.org", 443, false},
		{"cacher.lan", "deb.debian.org", "cacher.lan", 80, true},
		{"", "deb.debian.org,151.101.0.0/16", "evil.example", 80, true},
		{"127.0.0.1:3142", "deb.debian.org", "evil.example", 80, true},
	} {
		p := Policy{AllowNet: rules(t, tc.allowNet), AllowOnly: rules(t, tc.allowOnly)}
		if got := p.mayReach(tc.name, tc.port); got != tc.want {
			t.Errorf("--allow-net %q --allow-only %q: mayReach(%s, %d) = %v", tc.allowNet, tc.allowOnly, tc.name, tc.port, got)
		}
	}
}

func TestRefusedSaysHowToAllow(t *testing.T) {
	p := Policy{AllowOnly: rules(t, "deb.debian.org")}
	for _, tc := range []struct {
		host, addr string
		port       uint16
		want       string
	}{
		{"internal.example", "10.1.2.3", 80, "refused a connection from the helper VM to 10.1.2.3:80 (internal.example, private address); to allow it, add --allow-net internal.example or --allow-net 10.1.2.3"},
		{"169.254.169.254", "169.254.169.254", 80, "refused a connection from the helper VM to 169.254.169.254:80 (link-local address); to allow it, add --allow-net 169.254.169.254"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1", 3142, "refused a connection from the helper VM to 127.0.0.1:3142 (loopback address); to allow it, add --allow-net 127.0.0.1"},
		{"v6.example", "fd12::1", 443, "refused a connection from the helper VM to [fd12::1]:443 (v6.example, private address); to allow it, add --allow-net v6.example or --allow-net fd12::1"},
		{"self.example", "203.0.113.9", 22, "refused a connection from the helper VM to 203.0.113.9:22 (self.example, host's own address); to allow it, add --allow-net self.example or --allow-net 203.0.113.9"},
		{"public.example", "151.101.2.132", 443, "refused a connection from the helper VM to 151.101.2.132:443 (public.example, not named by --allow-only); to allow it, add --allow-only public.example or --allow-only 151.101.2.132"},
	} {
		r := p.Check(tc.host, netip.MustParseAddr(tc.addr), tc.port, fakeOwn)
		if r == nil || r.Error() != tc.want {
			t.Errorf("%s (%s):\ngot  %v\nwant %s", tc.host, tc.addr, r, tc.want)
		}
	}
	unresolved := &Refused{Name: "evil.example", Port: 443, Reason: "not named by --allow-only", Flag: "--allow-only"}
	if want := "refused a connection from the helper VM to evil.example:443 (not named by --allow-only); to allow it, add --allow-only evil.example"; unresolved.Error() != want {
		t.Errorf("got  %s\nwant %s", unresolved, want)
	}
}

// The host's addresses come with the networks they are on: loopback's
// 127.0.0.1/8 gives 127.0.0.1 and 127.0.0.0/8.
func TestHostAddrsHaveTheirNetworks(t *testing.T) {
	host, err := HostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	has := map[netip.Prefix]bool{}
	for _, p := range host {
		has[p] = true
	}
	for _, want := range []string{"127.0.0.1/32", "127.0.0.0/8"} {
		if !has[netip.MustParsePrefix(want)] {
			t.Errorf("HostAddrs lacks %s: %v", want, host)
		}
	}
}
