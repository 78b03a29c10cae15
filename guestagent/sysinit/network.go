package sysinit

import (
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/dibvm/dibvm/guestagent/api"
)

// ConfigureNetwork brings up loopback and, when n is set, the first
// Ethernet interface with n's static address, route and resolver. It talks
// netlink itself: four runs of ip(8) took a fifth of a second of the
// helper's boot under TCG.
func ConfigureNetwork(n *api.Network) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if n == nil {
		return nil
	}
	if n.Forwarded {
		return proxyOnLoopback(lo, n)
	}
	dev, err := firstEthernet()
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(n.Address)
	if err != nil {
		return fmt.Errorf("address %s: %w", n.Address, err)
	}
	gw := net.ParseIP(n.Gateway)
	if gw == nil {
		return fmt.Errorf("gateway %q is not an IP address", n.Gateway)
	}
	name := dev.Attrs().Name
	if err := netlink.AddrAdd(dev, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", n.Address, name, err)
	}
	if err := netlink.LinkSetUp(dev); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: dev.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("default route via %s: %w", n.Gateway, err)
	}
	return os.WriteFile("/etc/resolv.conf", []byte("nameserver "+n.DNS+"\n"), 0o644)
}

// proxyOnLoopback gives loopback the proxy's address, where the agent
// listens for the host, so that commands find the proxy at the same
// address as with QEMU's user networking. There is no resolver: names
// are the proxy's to resolve.
func proxyOnLoopback(lo netlink.Link, n *api.Network) error {
	host, addr, err := proxyHostAddr(n)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		return fmt.Errorf("address %s on lo: %w", host, err)
	}
	return nil
}

// proxyHostAddr is the host of n's proxy, as written, and its address
// alone in its network.
func proxyHostAddr(n *api.Network) (string, *netlink.Addr, error) {
	host, _, err := net.SplitHostPort(n.ProxyAddr())
	if err != nil {
		return "", nil, fmt.Errorf("proxy %q: %w", n.Proxy, err)
	}
	addr, err := netlink.ParseAddr(host + "/32")
	if err != nil {
		return "", nil, fmt.Errorf("proxy %q: %w", n.Proxy, err)
	}
	return host, addr, nil
}

// firstEthernet is the first interface that is not loopback.
func firstEthernet() (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback == 0 {
			return l, nil
		}
	}
	return nil, fmt.Errorf("network asked for, but the guest has no network interface")
}
